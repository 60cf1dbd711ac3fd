/* PLACEHOLDER: the native shim is being written (issue 3). */
#include <stdio.h>
int main(void) { fputs("warmlua: not built yet\n", stderr); return 1; }
