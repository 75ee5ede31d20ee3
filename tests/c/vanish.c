/* vanish: end a process while its threads are stopped at the supervisor.
 *
 *   vanish UDP_PORT MICROSECONDS
 *
 * Eight threads make socket calls that stop at the supervisor, without end: a connect
 * to a unix socket by a relative path (resolved from the thread's working directory),
 * a sendto naming 127.0.0.1:UDP_PORT, a new socket. After MICROSECONDS the main
 * thread ends the process (exit_group), so that its threads die in the middle of
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

static void *calls(void *unused) {
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
    if (argc != 3)
        return 2;
    udp_to.sin_family = AF_INET;
    udp_to.sin_port = htons(atoi(argv[1]));
    udp_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_t threads[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&threads[i], NULL, calls, NULL);
    usleep(atoi(argv[2]));
    _exit(0);
}
