/* interrupt: a blocking socket call that a signal interrupts.
 *
 *   interrupt recv|accept|sendto restart|norestart|timeout|expire
 *
 * SIGALRM arrives 200 ms into the call, its handler installed with SA_RESTART or (with
 * norestart) without; 600 ms in, a child lets the call finish (it sends, it connects,
 * or it drains the full queue sendto waits on). With timeout, the socket has a 400 ms
 * SO_SNDTIMEO/SO_RCVTIMEO, which the signal cuts short; with expire, one of 100 ms that
 * ends the call before the signal. Prints "CALL OK N" or "CALL ERR ERRNO", then
 * "handled" if the handler ran: run natively and sandboxed, the lines must match.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static void on_alarm(int sig) { (void)sig; handled = 1; }

static long timeout_us;  /* of the socket that blocks; 0: none */
static void limit(int fd, int option) {
    struct timeval limit = {.tv_usec = timeout_us};
    if (timeout_us) setsockopt(fd, SOL_SOCKET, option, &limit, sizeof limit);
}

static void alarm_in_200ms(void) {
    struct itimerval in = {.it_value = {.tv_usec = 200000}};
    setitimer(ITIMER_REAL, &in, NULL);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: interrupt recv|accept|sendto restart|norestart|timeout|expire\n"); return 98; }
    const char *call = argv[1], *mode = argv[2];
    timeout_us = !strcmp(mode, "timeout") ? 400000 : !strcmp(mode, "expire") ? 100000 : 0;
    struct sigaction action = {.sa_handler = on_alarm,
                               .sa_flags = strcmp(mode, "norestart") ? SA_RESTART : 0};
    sigemptyset(&action.sa_mask);
    sigaction(SIGALRM, &action, NULL);
    static char buffer[1024];
    long result;
    pid_t helper;

    if (!strcmp(call, "recv")) {
        int pair[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
        if ((helper = fork()) == 0) { usleep(600000); _exit(write(pair[1], "ping", 4) != 4); }
        limit(pair[0], SO_RCVTIMEO);
        alarm_in_200ms();
        result = recv(pair[0], buffer, sizeof buffer, 0);
    } else if (!strcmp(call, "accept")) {
        struct sockaddr_in here = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t length = sizeof here;
        int listener = socket(AF_INET, SOCK_STREAM, 0);
        if (bind(listener, (struct sockaddr *)&here, sizeof here) || listen(listener, 1) ||
            getsockname(listener, (struct sockaddr *)&here, &length)) { perror("listener"); return 97; }
        if ((helper = fork()) == 0) {
            usleep(600000);
            int client = socket(AF_INET, SOCK_STREAM, 0);
            _exit(connect(client, (struct sockaddr *)&here, sizeof here) != 0);
        }
        limit(listener, SO_RCVTIMEO);
        alarm_in_200ms();
        result = accept(listener, NULL, NULL);
        if (result >= 0) result = 0;  /* the descriptor number is beside the point */
    } else {
        /* A datagram to a named receiver whose queue is full: the sender waits for room. */
        struct sockaddr_un name = {.sun_family = AF_UNIX};
        snprintf(name.sun_path + 1, sizeof name.sun_path - 1, "interrupt-%d", getpid());
        socklen_t length = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name.sun_path + 1);
        int receiver = socket(AF_UNIX, SOCK_DGRAM, 0), sender = socket(AF_UNIX, SOCK_DGRAM, 0);
        if (bind(receiver, (struct sockaddr *)&name, length)) { perror("bind"); return 97; }
        while (sendto(sender, buffer, sizeof buffer, MSG_DONTWAIT, (struct sockaddr *)&name, length) >= 0)
            ;
        if ((helper = fork()) == 0) {
            usleep(600000);
            while (recv(receiver, buffer, sizeof buffer, MSG_DONTWAIT) >= 0)
                ;
            _exit(0);
        }
        limit(sender, SO_SNDTIMEO);
        alarm_in_200ms();
        result = sendto(sender, buffer, sizeof buffer, 0, (struct sockaddr *)&name, length);
    }
    if (result < 0)
        printf("%s ERR %s\n", call, strerrorname_np(errno));
    else
        printf("%s OK %ld\n", call, result);
    if (handled) printf("handled\n");
    waitpid(helper, NULL, 0);
    return 0;
}
