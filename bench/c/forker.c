/* forker PORT N: forks N short-lived children one after another; each makes one
 * trapped call (a TCP connect to the loopback server) and exits. Prints "children K"
 * every 500 children so run.py can tell when ~1,000 have come and gone, for watching
 * the supervisor's memory while processes it has seen are born and die. */
#include "common.h"
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int child(int port)
{
    struct sockaddr_in sin = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 1;
    no_time_wait(fd);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        return 1;
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: forker PORT N\n");
        return 2;
    }
    int port = atoi(argv[1]);
    long n = atol(argv[2]);
    long failed = 0;

    double start = now_us();
    for (long i = 1; i <= n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0)
            _exit(child(port));
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        if (i % 500 == 0) {
            printf("children %ld\n", i);
            fflush(stdout);
        }
    }
    report(now_us() - start, n);
    printf("failed %ld\n", failed);
    return failed != 0;
}
