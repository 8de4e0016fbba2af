/* main.c: the streamd binary; everything else lives in the streamd_core library. */
#include "roles/sd_cli.h"

int main(int argc, char **argv)
{
    return sd_cli_run(argc, argv);
}
