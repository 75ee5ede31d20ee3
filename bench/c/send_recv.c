/* send_recv PORT N: one connection to a loopback echo server, then N round trips of a
 * 4-byte message with send() and recv(). Only the connect (outside the timed loop)
 * stops under sockbox; send and recv on a connected socket are decided in the kernel. */
#include "common.h"
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: send_recv PORT N\n");
        return 2;
    }
    struct sockaddr_in sin = loopback(atoi(argv[1]));
    long n = atol(argv[2]);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("connect");

    char msg[4] = "ping", reply[4];
    double start = now_us();
    for (long i = 0; i < n; i++) {
        if (send(fd, msg, sizeof msg, 0) != sizeof msg)
            die("send");
        size_t got = 0;
        while (got < sizeof reply) {
            ssize_t r = recv(fd, reply + got, sizeof reply - got, 0);
            if (r <= 0)
                die("recv");
            got += r;
        }
    }
    report(now_us() - start, n);
    close(fd);
    return 0;
}
