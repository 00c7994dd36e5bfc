// SPDX-License-Identifier: MIT
// energy2mqtt command line (grows into run | validate | discovery | decode | version).
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "version") == 0) {
        printf("energy2mqtt %s\n", E2M_VERSION);
        return 0;
    }
    fprintf(stderr, "usage: energy2mqtt version\n");
    return 2;
}
