/* restart: blocking receives that signals interrupt.
 *
 *   restart [SA_RESTART]
 *
 * A UDP socket bound on loopback receives 6 times, blocking; SIGALRM comes every 20 ms
 * and every third one's handler sends the socket a datagram. With an argument the
 * handler is installed with SA_RESTART (the interrupted receives restart and each
 * gets a datagram), else without (they fail with EINTR). Prints "ok K eintr E".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int sender, ticks;
static struct sockaddr_in receiver;

static void tick(int signal_number)
{
    (void)signal_number;
    if (++ticks % 3 == 0)
        sendto(sender, "x", 1, 0, (struct sockaddr *)&receiver, sizeof receiver);
}

int main(int argc, char **argv)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sender = socket(AF_INET, SOCK_DGRAM, 0);
    receiver.sin_family = AF_INET;
    receiver.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof receiver;
    if (fd < 0 || sender < 0 || bind(fd, (struct sockaddr *)&receiver, sizeof receiver) < 0 ||
        getsockname(fd, (struct sockaddr *)&receiver, &length) < 0) {
        perror("socket");
        return 1;
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = tick;
    action.sa_flags = argc > 1 ? SA_RESTART : 0;
    sigaction(SIGALRM, &action, NULL);
    struct itimerval every = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &every, NULL);
    int ok = 0, interrupted = 0;
    char data[4];
    for (int i = 0; i < 6; i++) {
        ssize_t got = recv(fd, data, sizeof data, 0);
        ok += got == 1;
        interrupted += got < 0 && errno == EINTR;
    }
    printf("ok %d eintr %d\n", ok, interrupted);
    return 0;
}
