/* nomoat-verify subcommands: main.c dispatches `nomoat-verify <command> ...` to these.
 * Each returns the process exit status (0 ok, 1 limits exceeded / differences, 2 error). */
#ifndef NOMOAT_VERIFY_H
#define NOMOAT_VERIFY_H

int verify_tokenize_main(int argc, char **argv); /* verify/tokenize.c */

int verify_perplexity_main(int argc, char **argv); /* verify/perplexity.c */
int verify_imatrix_main(int argc, char **argv);    /* verify/imatrix.c */
int verify_gate_main(int argc, char **argv);       /* verify/gate.c */
int verify_diff_main(int argc, char **argv);       /* verify/diff.c */
int verify_checksums_main(int argc, char **argv);  /* verify/diff.c */
int verify_logits_main(int argc, char **argv);     /* verify/logits.c */

#endif
