/* udp_send PORT N: N sendto calls of 16 bytes, each naming a loopback destination.
 * Under sockbox each one stops at the supervisor, which sends the datagram itself. */
#include "common.h"
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: udp_send PORT N\n");
        return 2;
    }
    struct sockaddr_in sin = loopback(atoi(argv[1]));
    long n = atol(argv[2]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    char payload[16] = "sockbox bench";

    double start = now_us();
    for (long i = 0; i < n; i++)
        if (sendto(fd, payload, sizeof payload, 0, (struct sockaddr *)&sin, sizeof sin) < 0)
            die("sendto");
    report(now_us() - start, n);
    return 0;
}
