/* flip: have a verdict reached for one socket served for another at the same descriptor.
 *
 *   flip MODE PORT ITERATIONS
 *
 * Descriptor N names, in turn, a unix socket (which the profile lets send and receive)
 * and a TCP socket connected to PORT, a loopback listener outside the sandbox that has
 * sent "secret" and must receive nothing (inet sockets may do neither). MODEs:
 *   send-between, recv-between   one thread: dup2() the unix socket onto N, send() or
 *                                recv() on N, dup2() the TCP one onto N, the same call
 *                                again; ITERATIONS times
 *   send-process, recv-process   another process sharing the descriptor table
 *                                (clone(CLONE_FILES), not a thread) keeps dup2()ing the
 *                                two onto N while this one makes the call ITERATIONS times
 * Prints "done N unix U got G": U calls that worked while N was to name the unix socket
 * (the between modes; else 0), G calls that worked on the TCP socket (a send that went
 * out, a receive of "secret"; a send that went out in the process modes is counted by
 * the listener only).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int target, safe, unsafe, ready[2];

static int flipper(void *unused) {
    (void)unused;
    for (unsigned i = 0;; i++) {
        dup2(i & 1 ? unsafe : safe, target);
        if (i == 100)
            write(ready[1], "r", 1);  /* the race is on before the first call */
    }
    return 0;
}

/* One call on N: 1 if it did what it asks (sent the byte; received, from the TCP
 * socket, "secret"; from the unix one, anything). */
static int call(int receiving, int peer) {
    char got[16];
    if (!receiving) {
        int sent = send(target, "x", 1, MSG_DONTWAIT) == 1;
        recv(peer, got, sizeof got, MSG_DONTWAIT);  /* the unix side's queue never fills */
        return sent;
    }
    send(peer, "u", 1, MSG_DONTWAIT);  /* something for the unix side to receive */
    ssize_t n = recv(target, got, 6, MSG_DONTWAIT);
    return n == 1 ? got[0] == 'u' : n >= 6 && !memcmp(got, "secret", 6) ? 2 : 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: flip MODE PORT ITERATIONS\n");
        return 2;
    }
    const char *mode = argv[1];
    int receiving = !strncmp(mode, "recv", 4), iterations = atoi(argv[3]);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) < 0 || pipe(ready) < 0)
        return 1;
    safe = pair[0];
    unsafe = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(unsafe, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("connect");
        return 1;
    }
    struct pollfd secret = {unsafe, POLLIN, 0};
    if (receiving && poll(&secret, 1, 5000) != 1) {
        fprintf(stderr, "no secret came\n");  /* the attack would be run for nothing */
        return 1;
    }
    target = dup(safe);
    int unix_ok = 0, got = 0;
    if (strstr(mode, "-between")) {
        for (int i = 0; i < iterations; i++) {
            dup2(safe, target);
            unix_ok += call(receiving, pair[1]) == 1;
            dup2(unsafe, target);
            got += call(receiving, pair[1]) == (receiving ? 2 : 1);
        }
    } else {
        static char stack[64 * 1024];
        pid_t child = clone(flipper, stack + sizeof stack, CLONE_FILES | SIGCHLD, NULL);
        char byte;
        if (child < 0 || read(ready[0], &byte, 1) != 1) {
            perror("clone");
            return 1;
        }
        for (int i = 0; i < iterations; i++) {
            int did = call(receiving, pair[1]);
            got += receiving ? did == 2 : 0;
        }
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    printf("done %d unix %d got %d\n", iterations, unix_ok, got);
    return 0;
}
