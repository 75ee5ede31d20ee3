/* race: try to win the race between sockbox's check and the kernel's use.
 *
 *   race MODE ALLOWED DENIED ITERATIONS
 *
 * One thread makes the call ITERATIONS times while a second thread keeps rewriting
 * what the call points to, between a destination the profile allows (port ALLOWED on
 * 127.0.0.1) and one it denies (port DENIED). A listener on DENIED outside the sandbox
 * counts escapes. MODEs:
 *   connect          TCP connect (the direct syscall); the sockaddr's port flips
 *   sendto           UDP sendto (the direct syscall); the sockaddr's port flips
 *   sendmsg          UDP sendmsg; msg_name's port flips
 *   sendmsg-name     UDP sendmsg on a socket connected to ALLOWED; msg_name flips
 *                    between NULL and a sockaddr naming DENIED
 *   sendmmsg         UDP sendmmsg of two messages; the second one's port flips
 *   socketcall       connect through socketcall(2) (32-bit builds: the C library's
 *                    syscall(); 64-bit: int $0x80); the argument array's sockaddr
 *                    pointer flips between two sockaddrs
 *   unix DIR         unix stream connect to DIR/link/sock, where DIR/link is a symlink
 *                    the other thread keeps pointing at DIR/allowed and DIR/denied
 *   unix-bind DIR    unix bind to DIR/link/sock.I (I: the attempt), DIR/link flipping
 *                    as for unix; after each bind that succeeds, looks whether
 *                    DIR/denied/sock.I exists, and counts it as escaped if it does
 *                    (both unix modes: DENIED "still" leaves DIR/link alone)
 *   procmem          TCP connect; not a thread but another process (a forked child)
 *                    flips the port, writing into our memory through /proc/PID/mem
 * Prints "done N ok M refused K" (K counts calls that failed for any reason), and for
 * unix-bind " escaped E".
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64  /* /proc/PID/mem offsets are addresses, above 2 GiB in 32-bit builds */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static atomic_int stop;
static uint16_t allowed, denied;

/* Shared with the flipping thread. Lives below 4 GiB so int $0x80 can use it. */
struct shared {
    struct sockaddr_in target;          /* connect, sendto, sendmsg, socketcall */
    struct sockaddr_in good, bad;       /* the two values pointers flip between */
    struct msghdr msg;
    struct mmsghdr mmsg[2];
    struct sockaddr_in second;
    uint32_t words[3];                  /* socketcall's argument array */
    struct iovec iov;
    char data[4];
};
static struct shared *sh;
static const char *unix_dir;
static int escaped;

static void *flip(void *mode_arg) {
    const char *mode = mode_arg;
    char link[512], a[512], b[512], tmp[512];
    if (!strncmp(mode, "unix", 4)) {
        snprintf(link, sizeof link, "%s/link", unix_dir);
        snprintf(tmp, sizeof tmp, "%s/link.tmp", unix_dir);
        snprintf(a, sizeof a, "%s/allowed", unix_dir);
        snprintf(b, sizeof b, "%s/denied", unix_dir);
    }
    for (unsigned i = 0; !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        int odd = i & 1;
        if (!strncmp(mode, "unix", 4)) {
            unlink(tmp);
            if (symlink(odd ? b : a, tmp) == 0) rename(tmp, link);
        } else if (!strcmp(mode, "sendmsg-name")) {
            sh->msg.msg_name = odd ? (void *)&sh->bad : NULL;
            sh->msg.msg_namelen = odd ? sizeof sh->bad : 0;
        } else if (!strcmp(mode, "sendmmsg")) {
            sh->second.sin_port = odd ? denied : allowed;
        } else if (!strcmp(mode, "socketcall")) {
            sh->words[1] = (uint32_t)(uintptr_t)(odd ? &sh->bad : &sh->good);
        } else {
            sh->target.sin_port = odd ? denied : allowed;
        }
    }
    return NULL;
}

static struct sockaddr_in loopback(uint16_t port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = port};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

#if defined(__x86_64__)
static long socketcall(long call, void *args) {
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(102), "b"(call), "c"(args) : "memory");
    if (ret < 0 && ret > -4096) { errno = (int)-ret; return -1; }
    return ret;
}
#else
static long socketcall(long call, void *args) { return syscall(SYS_socketcall, call, args); }
#endif

static int attempt(const char *mode, int i) {
    if (!strcmp(mode, "connect") || !strcmp(mode, "socketcall")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int r;
        if (!strcmp(mode, "connect")) {
            /* the direct syscall on both builds (i386 glibc would use socketcall) */
            r = (int)syscall(SYS_connect, fd, (void *)&sh->target, sizeof sh->target);
        } else {
            sh->words[0] = fd;
            sh->words[2] = sizeof sh->good;
            r = (int)socketcall(3 /* SYS_CONNECT */, sh->words);
        }
        close(fd);
        return r;
    }
    if (!strcmp(mode, "unix")) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof un.sun_path, "%s/link/sock", unix_dir);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        int r = connect(fd, (void *)&un, sizeof un);
        close(fd);
        return r;
    }
    if (!strcmp(mode, "unix-bind")) {
        /* A name of its own each time: no bind fails for an earlier one, and where
         * each one landed stays to be seen. */
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        char landed[512];
        snprintf(un.sun_path, sizeof un.sun_path, "%s/link/sock.%d", unix_dir, i);
        snprintf(landed, sizeof landed, "%s/denied/sock.%d", unix_dir, i);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        int r = bind(fd, (void *)&un, sizeof un);
        if (r == 0 && access(landed, F_OK) == 0) escaped++;
        close(fd);
        return r;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    long r;
    if (!strcmp(mode, "sendto")) {
        /* the direct syscall on both builds, as for connect */
        r = (int)syscall(SYS_sendto, fd, "ping", 4, 0, (void *)&sh->target, sizeof sh->target);
    } else if (!strcmp(mode, "sendmsg")) {
        sh->msg.msg_name = &sh->target;
        sh->msg.msg_namelen = sizeof sh->target;
        r = sendmsg(fd, &sh->msg, 0);
    } else if (!strcmp(mode, "sendmsg-name")) {
        struct sockaddr_in good = loopback(allowed);
        connect(fd, (void *)&good, sizeof good);
        r = sendmsg(fd, &sh->msg, 0);
    } else {
        r = sendmmsg(fd, sh->mmsg, 2, 0);
    }
    close(fd);
    return r < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: race MODE ALLOWED DENIED ITERATIONS (unix modes: DIR as ALLOWED)\n");
        return 98;
    }
    const char *mode = argv[1];
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
#ifdef MAP_32BIT
              | MAP_32BIT
#endif
              , -1, 0);
    if (sh == MAP_FAILED) { perror("mmap"); return 97; }
    if (!strncmp(mode, "unix", 4)) unix_dir = argv[2];
    else { allowed = htons(atoi(argv[2])); denied = htons(atoi(argv[3])); }
    sh->target = loopback(allowed);
    sh->good = loopback(allowed);
    sh->bad = loopback(denied);
    sh->second = loopback(allowed);
    memcpy(sh->data, "ping", 4);
    sh->iov = (struct iovec){sh->data, 4};
    sh->msg = (struct msghdr){.msg_iov = &sh->iov, .msg_iovlen = 1};
    for (int i = 0; i < 2; i++)
        sh->mmsg[i].msg_hdr = (struct msghdr){.msg_name = i ? (void *)&sh->second : (void *)&sh->good,
                                             .msg_namelen = sizeof sh->good,
                                             .msg_iov = &sh->iov, .msg_iovlen = 1};
    sh->words[1] = (uint32_t)(uintptr_t)&sh->good;

    pthread_t flipper;
    pid_t writer = 0;
    int flipping = 0;
    if (!strcmp(mode, "procmem")) {
        writer = fork();
        if (writer == 0) {
            char path[64];
            snprintf(path, sizeof path, "/proc/%d/mem", getppid());
            int mem = open(path, O_RDWR);
            if (mem < 0) { perror("open mem"); _exit(1); }
            for (unsigned i = 0;; i++) {
                uint16_t value = (i & 1) ? denied : allowed;
                pwrite(mem, &value, sizeof value, (off_t)(uintptr_t)&sh->target.sin_port);
            }
        }
        mode = "connect";
    } else if (!unix_dir || strcmp(argv[3], "still")) {
        flipping = pthread_create(&flipper, NULL, flip, (void *)mode) == 0;
    }
    int iterations = atoi(argv[4]), ok = 0, refused = 0;
    for (int i = 0; i < iterations; i++) {
        if (attempt(mode, i) == 0) ok++; else refused++;
    }
    atomic_store(&stop, 1);
    if (writer) kill(writer, SIGKILL);
    if (flipping) pthread_join(flipper, NULL);
    printf("done %d ok %d refused %d", iterations, ok, refused);
    if (!strcmp(mode, "unix-bind")) printf(" escaped %d", escaped);
    printf("\n");
    return 0;
}
