/* connect_storm PORT N THREADS: N TCP connects (socket, connect, close; closed with
 * SO_LINGER 0) to a loopback server, split evenly across THREADS threads. Reports wall
 * time per connect over the whole storm, so with threads it is the inverse of
 * throughput. Every connect under sockbox stops at the supervisor; nothing else in the
 * loop does. */
#include "common.h"
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;
static long per_thread;

/* The slowest single connect: a second or more means a SYN was dropped (a full accept
 * queue) and retransmitted, which says more about the server than about the tool. */
static void *storm(void *arg)
{
    double *slowest = arg;
    struct sockaddr_in sin = loopback(port);
    for (long i = 0; i < per_thread; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        no_time_wait(fd);
        double start = now_us();
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
            die("connect");
        double took = now_us() - start;
        if (took > *slowest)
            *slowest = took;
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: connect_storm PORT N THREADS\n");
        return 2;
    }
    port = atoi(argv[1]);
    long n = atol(argv[2]);
    int threads = atoi(argv[3]);
    per_thread = n / threads;
    pthread_t *ids = calloc(threads, sizeof *ids);
    double *slowest = calloc(threads, sizeof *slowest);

    double start = now_us();
    for (int t = 0; t < threads; t++)
        if (pthread_create(&ids[t], NULL, storm, &slowest[t]) != 0)
            die("pthread_create");
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    report(now_us() - start, per_thread * threads);
    double max = 0;
    for (int t = 0; t < threads; t++)
        max = slowest[t] > max ? slowest[t] : max;
    printf("max_connect_us %.1f\n", max);
    return 0;
}
