/* Loopback servers for the workloads, one per mode:
 *   server accept   TCP: accept and close at once (the connect storm, the forker)
 *   server echo     TCP: echo every byte back, a thread per connection (send/recv)
 *   server udp      UDP: read and discard datagrams (sendto)
 * Binds 127.0.0.1 on a free port, prints "port N" once listening, then serves until
 * killed. It is C so that the accept loop keeps up with 64 connecting threads. */
#include "common.h"
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on_loopback(int type)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0)
        die("socket");
    struct sockaddr_in sin = loopback(0);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("bind");
    if (type == SOCK_STREAM && listen(fd, 4096) < 0)
        die("listen");
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    printf("port %d\n", ntohs(sin.sin_port));
    fflush(stdout);
    return fd;
}

static void *accept_and_close(void *arg)
{
    int listener = *(int *)arg;
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

static void *echo(void *arg)
{
    int fd = (int)(long)arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (write(fd, buf, n) != n)
            break;
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "accept") == 0) {
        int listener = listen_on_loopback(SOCK_STREAM);
        pthread_t second;  /* two acceptors: the storm's 64 threads on 2 cores */
        pthread_create(&second, NULL, accept_and_close, &listener);
        accept_and_close(&listener);
    } else if (strcmp(mode, "echo") == 0) {
        int listener = listen_on_loopback(SOCK_STREAM);
        for (;;) {
            int fd = accept(listener, NULL, NULL);
            pthread_t thread;
            if (fd >= 0 && pthread_create(&thread, NULL, echo, (void *)(long)fd) == 0)
                pthread_detach(thread);
        }
    } else if (strcmp(mode, "udp") == 0) {
        int fd = listen_on_loopback(SOCK_DGRAM);
        char buf[65536];
        for (;;)
            recv(fd, buf, sizeof buf, 0);
    }
    fprintf(stderr, "usage: server accept|echo|udp\n");
    return 2;
}
