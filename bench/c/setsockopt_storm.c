/* setsockopt_storm N: N setsockopt(TCP_NODELAY) calls on one TCP socket, which is never
 * connected. Built 64-bit, each is the x86_64 setsockopt syscall, which the filter can
 * decide from its registers (level and option); built with -m32, glibc makes it through
 * socketcall(102), whose arguments are in memory. */
#include "common.h"
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: setsockopt_storm N\n");
        return 2;
    }
    long n = atol(argv[1]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");

    double start = now_us();
    for (long i = 0; i < n; i++) {
        int on = i & 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0)
            die("setsockopt");
    }
    report(now_us() - start, n);
    close(fd);
    return 0;
}
