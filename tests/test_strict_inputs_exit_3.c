/* Inputs that used to be taken silently or to hang are refused with exit 3 and a message naming
 * the file: FIFOs, devices, directories and symbolic-link loops where a file is expected; JSON
 * with a key given twice or text after its end (plan, thresholds, config.json, safetensors
 * headers, manifests); safetensors tensors that overlap or have fractional shapes; wrong types in
 * config.json; plans that name a tensor twice or one the model lacks; thresholds for a domain the
 * set does not have; a calibration text of a few tokens. JSON output stays valid UTF-8. */
#include <stdint.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "tests/test_util.h"

static char dir[512];

/* runs a command in dir under a timeout (a FIFO must not block); checks code and message */
static void refused(const char *what, int code, const char *name, const char *want, const char *cmdline) {
    char *out;
    int rc = run_in(dir, &out, "timeout 60 sh -c '%s'", cmdline);
    CHECK(rc == code, "%s: exit %d, want %d: %.500s", what, rc, code, out);
    CHECK(!name || strstr(out, name), "%s: message does not name %s: %.500s", what, name, out);
    CHECK(strstr(out, want) != NULL, "%s: message lacks '%s': %.500s", what, want, out);
    CHECK(!strstr(out, "Sanitizer"), "%s: sanitizer report: %.800s", what, out);
    free(out);
}

static void sh(const char *cmdline) {
    char *out;
    int rc = run_in(dir, &out, "%s", cmdline);
    CHECK(rc == 0, "setup '%.200s': %.500s", cmdline, out);
    free(out);
}

/* a safetensors file: u64 header length, the header text as given, then data_bytes zero bytes */
static void safetensors(const char *name, const char *header, size_t data_bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);
    fwrite(&n, 8, 1, f);
    fputs(header, f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

/* a valid llama config.json in hf/, with `extra` ("" or ", \"key\": value") before its closing brace */
static void hf_config(const char *extra) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "printf '%%s' '{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
             "\"num_hidden_layers\": 1, \"num_attention_heads\": 8, \"vocab_size\": 512%s}' > hf/config.json", extra);
    sh(cmd);
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf");
    snprintf(dir, sizeof dir, "%s", d);
    char line[4096];
    snprintf(line, sizeof line,
             "cp '%s' M.gguf && mkfifo fifo && mkdir adir && ln -s loop1 loop2 && ln -s loop2 loop1 && "
             "printf '{\"name\": \"tiny\", \"domains\": [{\"name\": \"gpl\", \"files\": [\"/usr/share/common-licenses/GPL-3\"], "
             "\"tokens\": 512}]}' > tiny.json && $Q profile M.gguf --db s.db --formats q8_0 --calib-tokens 256 --sensitivity "
             "--eval tiny.json --sens-formats q8_0,q4_0 --quiet && $Q plan --db s.db --budget-bpw 7 --out plan.json",
             model);
    sh(line);

    /* things that are not regular files */
    refused("FIFO as model", 3, "fifo", "not a regular file", "$Q inspect fifo");
    refused("FIFO as text", 3, "fifo", "not a regular file", "$Q ppl M.gguf --text fifo");
    refused("FIFO as calibration text", 3, "fifo", "not a regular file", "$Q profile M.gguf --data fifo --db f.db --quiet");
    refused("device as text", 3, "/dev/zero", "not a regular file", "$Q ppl M.gguf --text /dev/zero");
    refused("directory as text", 3, "adir", "is a directory", "$Q ppl M.gguf --text adir");
    refused("symbolic link loop as model", 3, "loop1", "loop of symbolic links", "$Q inspect loop1");
    refused("symbolic link loop as text", 3, "loop1", "loop of symbolic links", "$Q ppl M.gguf --text loop1");
    sh("mkdir hf && mkfifo hf/model.safetensors");
    hf_config("");
    refused("FIFO as model.safetensors", 3, "model.safetensors", "not a regular file", "$Q inspect hf");

    /* JSON: a key twice, text after the end, wrong types */
    sh("rm hf/model.safetensors && printf '{\"model_type\": \"llama\", \"hidden_size\": 64, \"hidden_size\": 128}' > hf/config.json");
    refused("config.json with a key twice", 3, "config.json", "'hidden_size' appears twice", "$Q inspect hf");
    hf_config(", \"rms_norm_eps\": \"1e-5\"");
    refused("config.json with a string for a number", 3, "config.json", "'rms_norm_eps' has the wrong type", "$Q inspect hf");
    hf_config("");
    safetensors("hf/model.safetensors",
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [8], \"data_offsets\": [0, 32]}, \"a\": {}}", 256);
    refused("safetensors header with a key twice", 3, "model.safetensors", "'a' appears twice", "$Q inspect hf");
    safetensors("hf/model.safetensors",
                "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [16], \"data_offsets\": [0, 64]}, "
                "\"model.embed_tokens.weight\": {\"dtype\": \"F32\", \"shape\": [16], \"data_offsets\": [32, 96]}}",
                256);
    refused("overlapping safetensors tensors", 3, "model.safetensors", "overlap", "$Q inspect hf");
    safetensors("hf/model.safetensors",
                "{\"model.norm.weight\": {\"dtype\": \"F32\", \"shape\": [15.5], \"data_offsets\": [0, 62]}}", 256);
    refused("fractional safetensors shape", 3, "model.safetensors", "not a positive integer", "$Q inspect hf");
    sh("python3 -c \"import json; p=json.load(open('plan.json')); open('dup-key.json','w').write(json.dumps(p)[:-1] + ', "
       "\\\"target\\\": \\\"any\\\"}')\"");
    refused("plan with a key twice", 3, "dup-key.json", "'target' appears twice", "$Q quantize M.gguf --plan dup-key.json -o o.gguf");
    sh("cp plan.json trailing.json && echo '{\"more\": 1}' >> trailing.json");
    refused("plan with text after its end", 3, "trailing.json", "after the JSON value", "$Q quantize M.gguf --plan trailing.json -o o.gguf");
    sh("python3 -c \"import json; p=json.load(open('plan.json')); p['tensors'].append(dict(p['tensors'][3])); "
       "json.dump(p, open('dup-tensor.json','w'))\"");
    refused("plan naming a tensor twice", 3, "dup-tensor.json", "again", "$Q quantize M.gguf --plan dup-tensor.json -o o.gguf");
    refused("plan naming a tensor twice (verify)", 3, "dup-tensor.json", "again", "$Q plan verify M.gguf dup-tensor.json");
    sh("python3 -c \"import json; p=json.load(open('plan.json')); p['tensors'].append({'name': 'blk.9.attn_q.weight', "
       "'format': 'q8_0'}); json.dump(p, open('extra.json','w'))\"");
    refused("plan naming a tensor the model lacks", 3, "extra.json", "does not have", "$Q quantize M.gguf --plan extra.json -o o.gguf");
    sh("python3 -c \"import json; p=json.load(open('plan.json')); [t.update(format='fp8-e4m3') for t in p['tensors'] "
       "if t['name'] == 'blk.0.attn_q.weight']; json.dump(p, open('fp8.json','w'))\"");
    refused("plan with a format llama.cpp cannot load", 3, "fp8.json", "not a ggml type", "$Q quantize M.gguf --plan fp8.json -o o.gguf");

    /* thresholds and evaluation sets */
    sh("printf '{\"default\": {\"max_kl\": 1}, \"default\": {\"max_kl\": 0.001}}' > th-dup.json && "
       "printf '{\"domains\": {\"gpl-3\": {\"max_kl\": 0.0001}}}' > th-typo.json && printf '{}' > th-none.json && "
       "printf '{\"name\": \"t\", \"name\": \"u\", \"domains\": []}' > set-dup.json && "
       "printf '{\"name\": \"short\", \"domains\": [{\"name\": \"a\", \"files\": [\"few.txt\"], \"tokens\": 512}]}' > short.json && "
       "printf 'Once upon a time.' > few.txt");
    refused("thresholds with a key twice", 3, "th-dup.json", "'default' appears twice",
            "$Q check --model M.gguf --base M.gguf --data tiny.json --ctx 128 --thresholds th-dup.json");
    refused("thresholds for a domain the set lacks", 3, "th-typo.json", "has no domain 'gpl-3'",
            "$Q check --model M.gguf --base M.gguf --data tiny.json --ctx 128 --thresholds th-typo.json");
    refused("thresholds that gate nothing", 3, "th-none.json", "gate nothing",
            "$Q check --model M.gguf --base M.gguf --data tiny.json --ctx 128 --thresholds th-none.json");
    refused("evaluation set with a key twice", 3, "set-dup.json", "'name' appears twice",
            "$Q check --model M.gguf --base M.gguf --data set-dup.json --ctx 128");
    refused("a domain too short to evaluate", 3, "few.txt", "needs at least",
            "$Q check --model M.gguf --base M.gguf --data short.json --ctx 128");
    refused("calibration on a few tokens", 3, "few.txt", "at least 64", "$Q profile M.gguf --data few.txt --db few.db --quiet");
    refused("plan --rounding magic", 2, NULL, "--rounding must be", "$Q plan --db s.db --budget-bpw 7 --rounding magic --out r.json");
    /* a run that cannot fit is refused before it starts (no database), with the figures */
    refused("a profile over its memory budget", 3, "M.gguf", "would hold about",
            "$Q profile M.gguf --db big.db --mem-budget 1M --quiet");
    refused("a malformed memory budget", 2, NULL, "expects a size", "$Q profile M.gguf --db big.db --mem-budget 12Q");
    {
        char p[1024];
        snprintf(p, sizeof p, "%s/big.db", dir);
        CHECK(!qs_path_exists(p), "a refused profile created its database");
    }

    /* JSON output is valid UTF-8 even when the model's strings are not */
    {
        char *data;
        size_t n;
        char path[1024];
        snprintf(path, sizeof path, "%s/M.gguf", dir);
        qs_read_file(path, &data, &n, NULL);
        char *hit = memmem(data, n, "general.name", 12);
        CHECK(hit != NULL, "stories260K.gguf has general.name");
        if (hit) {
            memcpy(hit + 12 + 4 + 8, "\xff\xc3(\x80m", 5); /* the value "llama": an invalid byte, a cut sequence */
            snprintf(path, sizeof path, "%s/bad-utf8.gguf", dir);
            FILE *f = fopen(path, "wb");
            fwrite(data, 1, n, f);
            fclose(f);
        }
        free(data);
        char *out;
        int rc = run_in(dir, &out, "$Q inspect bad-utf8.gguf --json > bad.json && python3 -c \"import json; "
                                   "d = json.load(open('bad.json', encoding='utf-8')); print(ascii(d['metadata']['general.name']))\"");
        CHECK(rc == 0 && strstr(out, "\\ufffd"), "inspect --json of invalid UTF-8 must stay valid JSON in UTF-8: %.400s", out);
        free(out);
    }

    char *out;
    run_in(dir, &out, "rm -rf '%s'", dir);
    free(out);
    free(d);
    free(model);
    return test_done("test_strict_inputs_exit_3");
}
