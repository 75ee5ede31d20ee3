/* connect_storm PORT N THREADS: N TCP connects (socket, connect, close; SO_LINGER 0) to a loopback
 * server, split evenly across THREADS threads. Reports wall time per connect over the
 * whole storm, so with threads it is the inverse of throughput. Every connect under
 * sockbox stops at the supervisor; nothing else in the loop does. */
#include "common.h"
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;
static long per_thread;

static void *storm(void *arg)
{
    (void)arg;
    struct sockaddr_in sin = loopback(port);
    for (long i = 0; i < per_thread; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        no_time_wait(fd);
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
            die("connect");
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

    double start = now_us();
    for (int t = 0; t < threads; t++)
        if (pthread_create(&ids[t], NULL, storm, NULL) != 0)
            die("pthread_create");
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    report(now_us() - start, per_thread * threads);
    return 0;
}
