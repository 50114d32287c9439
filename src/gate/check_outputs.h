/* What the gate writes for CI: JUnit XML (one test case per domain and gated metric) and a
 * Markdown table for a pull-request comment. Both through qs_output: never over an input. */
#ifndef QS_CHECK_OUTPUTS_H
#define QS_CHECK_OUTPUTS_H

#include "gate/check.h"

int qs_check_write_junit(const qs_check_summary *s, const char *path, qs_error *err);
int qs_check_write_markdown(const qs_check_summary *s, const qs_check_options *o, const char *path, qs_error *err);

#endif
