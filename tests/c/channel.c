/* channel: attack the handover channel (where pidfd_getfd is refused, every process of
 * the sandbox holds one end of a unix socket pair at a fixed descriptor, on which the
 * supervisor makes a stopped thread hand over the socket it judges).
 *
 *   channel UDP_PORT ITERATIONS
 *
 * If the channel is there (the descriptor min(1023, RLIMIT_NOFILE - 1) is open), try to
 * close it, dup2 a socket onto it, close_range over it and shut it down, printing what
 * each returned ("close 0 kept", "dup2 EBADF", ...). Then one thread keeps sending a
 * forged SCM_RIGHTS message on it carrying an unconnected UDP socket, while the main
 * thread makes ITERATIONS sendto() calls on a unix seqpacket socket naming 127.0.0.1:UDP_PORT
 * as the destination: there the destination means nothing (a plain send), on the
 * forged UDP socket it would send a datagram to it.
 * Prints "sent S denied D lost L forged G received R": D sends refused with EACCES
 * (judged as the forged socket's), L failed otherwise (the channel kept full: EBADF),
 * R the bytes its other end got.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int stop;
static int channel, udp;

static const char *outcome(long result) {
    static char text[32];
    if (result >= 0) {
        snprintf(text, sizeof text, "%ld", result);
        return text;
    }
    return errno == EBADF ? "EBADF" : errno == ENOSYS ? "ENOSYS" : errno == EPERM ? "EPERM" : strerror(errno);
}

static void *forge(void *counter) {
    char byte = 'f';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &udp, sizeof(int));
    /* Paced: through socketcall (i386) each forged message stops at the supervisor too. */
    while (!atomic_load(&stop)) {
        if (sendmsg(channel, &message, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            ++*(int *)counter;
        usleep(100);
    }
    return NULL;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return to;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: channel UDP_PORT ITERATIONS\n");
        return 2;
    }
    struct sockaddr_in udp_to = loopback(atoi(argv[1]));
    int iterations = atoi(argv[2]);
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    channel = files.rlim_cur - 1 < 1023 ? (int)files.rlim_cur - 1 : 1023;
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    int present = fcntl(channel, F_GETFD) >= 0;
    if (present) {
        long result = close(channel);
        printf("close %s %s\n", outcome(result), fcntl(channel, F_GETFD) >= 0 ? "kept" : "gone");
        printf("dup2 %s\n", outcome(dup2(udp, channel)));
        printf("close_range %s\n", outcome(syscall(SYS_close_range, channel, channel, 0)));
        printf("shutdown %s\n", outcome(shutdown(channel, SHUT_RDWR)));
    } else {
        printf("no channel\n");
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair) != 0) {
        printf("socketpair ERR %s\n", strerror(errno));
        return 1;
    }
    int forged = 0;
    pthread_t forger;
    if (present)
        pthread_create(&forger, NULL, forge, &forged);
    int sent = 0, denied = 0, lost = 0;
    long received = 0, got;
    char buffer[4096];
    for (int i = 0; i < iterations; i++) {
        while ((got = recv(pair[1], buffer, sizeof buffer, MSG_DONTWAIT)) > 0)  /* room for the next */
            received += got;
        if (sendto(pair[0], "x", 1, 0, (struct sockaddr *)&udp_to, sizeof udp_to) == 1)
            sent++;
        else if (errno == EACCES)
            denied++;
        else
            lost++;
    }
    atomic_store(&stop, 1);
    if (present)
        pthread_join(forger, NULL);
    close(pair[0]);
    while ((got = read(pair[1], buffer, sizeof buffer)) > 0)
        received += got;
    printf("sent %d denied %d lost %d forged %d received %ld\n", sent, denied, lost, forged, received);
    return 0;
}
