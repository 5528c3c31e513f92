/* nomoat-verify subcommands: main.c dispatches `nomoat-verify <command> ...` to these.
 * Each returns the process exit status (0 ok, 1 limits exceeded / differences, 2 error). */
#ifndef NOMOAT_VERIFY_H
#define NOMOAT_VERIFY_H

int verify_tokenize_main(int argc, char **argv); /* verify/tokenize.c */

#endif
