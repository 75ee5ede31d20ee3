/* Shared by the workloads: a monotonic clock, a loopback address, and the report
 * line run.py parses ("per_op_us X"). Each workload times only its measured loop,
 * so process startup (and the sandbox's own start) is not in the number. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static inline struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

/* Close with a reset instead of a FIN: the client would otherwise leave a TIME_WAIT
 * socket per connect, and tens of thousands of them make the kernel's search for a free
 * ephemeral port (in connect itself) slower and slower as the benchmark goes on. */
static inline void no_time_wait(int fd)
{
    struct linger off = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof off);
}

static inline void report(double elapsed_us, long ops)
{
    printf("ops %ld\nelapsed_us %.1f\nper_op_us %.4f\n", ops, elapsed_us, elapsed_us / ops);
}

static inline void die(const char *what)
{
    perror(what);
    exit(1);
}

#endif
