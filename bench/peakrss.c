/*
 * peakrss: run a command and write its peak RSS (KiB) and the bytes it made the kernel write to
 * block devices (ru_oublock, 512-byte units: files written, not pipes or sockets) to a file,
 * one number per line.
 *
 *     peakrss OUTFILE COMMAND [ARGS...]
 *
 * Why not os.wait4 straight from Python: Python starts children with vfork/fork, and Linux
 * carries the pre-exec address space's high-water mark into the child's ru_maxrss, so every
 * command would report at least the benchmark process's own RSS (~36 MB). This launcher is
 * tiny: the process it forks execs the command with a ~1 MB high-water mark, and wait4 then
 * reports the largest RSS of that process and of its reaped descendants.
 * Exits with the command's exit code (128+N when killed by signal N).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: peakrss OUTFILE COMMAND [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("wait4");
        return 2;
    }
    FILE *out = fopen(argv[1], "w");
    if (out == NULL) {
        perror(argv[1]);
        return 2;
    }
    fprintf(out, "%ld\n%ld\n", usage.ru_maxrss, usage.ru_oublock);
    fclose(out);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
