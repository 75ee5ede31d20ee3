/* vanish: end a process while its threads are stopped at the supervisor.
 *
 *   vanish MODE UDP_PORT MICROSECONDS
 *
 * Sixteen threads make socket calls that stop at the supervisor, without end. MODE
 * "paths": a connect to a unix socket by a relative path (resolved from the thread's
 * working directory), a sendto naming 127.0.0.1:UDP_PORT, a new socket; "family": a
 * send and a receive on one unix datagram socket pair (under a family rule, each
 * keeps the other threads still while the kernel makes it). After MICROSECONDS the
 * main thread ends the process (exit_group), so that its threads die in the middle of
 * their stops. Exits 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_in udp_to;
static int pair[2];

static void *family(void *unused) {
    (void)unused;
    char byte;
    for (;;) {
        send(pair[0], "v", 1, MSG_DONTWAIT);
        recv(pair[1], &byte, 1, MSG_DONTWAIT);
    }
    return NULL;
}

static void *paths(void *unused) {
    (void)unused;
    struct sockaddr_un path = {.sun_family = AF_UNIX};
    strcpy(path.sun_path, "no-such.sock");
    for (;;) {
        int unix_socket = socket(AF_UNIX, SOCK_STREAM, 0);
        connect(unix_socket, (struct sockaddr *)&path, sizeof path);
        close(unix_socket);
        int udp = socket(AF_INET, SOCK_DGRAM, 0);
        sendto(udp, "v", 1, 0, (struct sockaddr *)&udp_to, sizeof udp_to);
        close(udp);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    udp_to.sin_family = AF_INET;
    udp_to.sin_port = htons(atoi(argv[2]));
    udp_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, pair);
    pthread_t threads[16];
    for (int i = 0; i < 16; i++)
        pthread_create(&threads[i], NULL, strcmp(argv[1], "family") == 0 ? family : paths, NULL);
    usleep(atoi(argv[3]));
    _exit(0);
}
