/* netprobe: make socket calls every way a program can, and say what the kernel answered.
 *
 *   netprobe [--via MODE] [--thread] [--fork] [--exec] [--vfork-exec] OP ARGS...
 *
 * MODE is how each socket call enters the kernel:
 *   libc        the C library's functions (whatever they use underneath)
 *   syscall     syscall(2) with this build's direct socket syscall numbers
 *   socketcall  socketcall(102) (32-bit builds: syscall(2); 64-bit builds: int $0x80)
 *   int80       the direct i386 socket syscalls through int $0x80 (64-bit builds)
 * From a 64-bit build, int $0x80 takes 32-bit pointers, so every buffer handed to the
 * kernel is first copied below 4 GiB (MAP_32BIT) and structures use the i386 layout.
 *
 * OPs (each prints "OK <result>" or "ERR <ERRNO>" per step, exits 0 when all succeed):
 *   tcp HOST PORT           socket, connect, send "ping", recv the reply
 *   tcp-fastopen HOST PORT  socket, sendto(MSG_FASTOPEN) "ping" to HOST:PORT
 *   udp HOST PORT           socket, sendto "ping"
 *   udp-connected HOST PORT socket, connect, send "ping"
 *   udp-msg HOST PORT       socket, sendmsg "ping" with msg_name
 *   udp-mmsg HOST PORT N    socket, sendmmsg N copies of "ping"
 *   unix PATH               unix stream socket, connect to PATH, send "ping", recv
 *   unix-abstract NAME      the same for an abstract name
 *   listen HOST PORT        socket, bind, listen, getsockname
 *   socket FAMILY TYPE PROTO    socket() with these numbers
 *   socketpair              socketpair(AF_UNIX, SOCK_STREAM)
 *   raw-connect FAMILY HEX  connect a fresh stream socket of FAMILY to a sockaddr given in hex
 *   raw-bind FAMILY HEX     bind a fresh stream socket of FAMILY to a sockaddr given in hex
 *   raw-sendto FAMILY HEX   sendto "ping" from a fresh datagram socket to a sockaddr in hex
 *   udp-mmsg-mixed HOST OK BAD  sendmmsg two messages, to port OK and to port BAD
 *   bad-pointer             connect with a sockaddr at an unmapped address
 *   bad-length              connect with addrlen 4096
 *   bad-socketcall-array    socketcall(SYS_CONNECT) whose argument array is unmapped
 * HOST is an IPv4 or IPv6 literal. Options before the operation:
 *   --alarm S      SIGALRM after S seconds, caught by a handler without SA_RESTART
 *   --sndtimeo MS  SO_SNDTIMEO on every socket made (bounds a blocking connect)
 *   --repeat N     run the operation N times (each with new sockets)
 *   --then PATH    afterwards, exec PATH with the same arguments but this option
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

enum { VIA_LIBC, VIA_SYSCALL, VIA_SOCKETCALL, VIA_INT80 };
static int via = VIA_LIBC;
static int send_timeout_ms;

/* socketcall subcall numbers (linux/net.h) */
enum { SC_SOCKET = 1, SC_BIND, SC_CONNECT, SC_LISTEN, SC_ACCEPT, SC_GETSOCKNAME,
       SC_GETPEERNAME, SC_SOCKETPAIR, SC_SEND, SC_RECV, SC_SENDTO, SC_RECVFROM,
       SC_SHUTDOWN, SC_SETSOCKOPT, SC_GETSOCKOPT, SC_SENDMSG, SC_RECVMSG, SC_ACCEPT4,
       SC_RECVMMSG, SC_SENDMMSG };

/* The i386 syscall table (arch/x86/entry/syscalls/syscall_32.tbl), independent of the
 * numbers sockbox asks libseccomp for. */
static const long i386_nr[] = {
    [SC_SOCKET] = 359, [SC_BIND] = 361, [SC_CONNECT] = 362, [SC_LISTEN] = 363,
    [SC_GETSOCKNAME] = 367, [SC_GETPEERNAME] = 368, [SC_SOCKETPAIR] = 360,
    [SC_SENDTO] = 369, [SC_RECVFROM] = 371, [SC_SHUTDOWN] = 373, [SC_SETSOCKOPT] = 366,
    [SC_GETSOCKOPT] = 365, [SC_SENDMSG] = 370, [SC_RECVMSG] = 372, [SC_ACCEPT4] = 364,
    [SC_RECVMMSG] = 337, [SC_SENDMMSG] = 345,
};
#define I386_SOCKETCALL 102

static void report(const char *step, long result) {
    if (result < 0)
        printf("%s ERR %s\n", step, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("%s OK %ld\n", step, result);
    fflush(stdout);
}

/* --- memory below 4 GiB for int $0x80 from a 64-bit process ------------------------- */
static char *arena;
static size_t arena_used;

static void *low(const void *data, size_t size) {
    if (!arena) {
        arena = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS
#ifdef MAP_32BIT
                         | MAP_32BIT
#endif
                     , -1, 0);
        if (arena == MAP_FAILED) { perror("mmap"); exit(99); }
    }
    void *p = arena + arena_used;
    if (data) memcpy(p, data, size); else memset(p, 0, size);
    arena_used += (size + 15) & ~(size_t)15;
    return p;
}

static uint32_t lo32(const void *p) { return (uint32_t)(uintptr_t)p; }

#if defined(__x86_64__)
static long int80(long nr, long a, long b, long c, long d, long e, long f) {
    long ret;
    /* ebp carries the sixth argument; swap it in and back rather than push (red zone) */
    asm volatile("xchg %[f], %%rbp\n\tint $0x80\n\txchg %[f], %%rbp"
                 : "=a"(ret), [f] "+r"(f)
                 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                 : "memory");
    if (ret < 0 && ret > -4096) { errno = (int)-ret; return -1; }
    return ret;
}
#endif

/* One socket call, entered as --via says. Arguments are 32-bit-safe values or pointers
 * that the caller has already placed low when needed. */
static long call(int sc, long a0, long a1, long a2, long a3, long a4, long a5) {
#if defined(__x86_64__)
    static const long x64_nr[] = {
        [SC_SOCKET] = SYS_socket, [SC_BIND] = SYS_bind, [SC_CONNECT] = SYS_connect,
        [SC_LISTEN] = SYS_listen, [SC_ACCEPT] = SYS_accept, [SC_GETSOCKNAME] = SYS_getsockname,
        [SC_GETPEERNAME] = SYS_getpeername, [SC_SOCKETPAIR] = SYS_socketpair,
        [SC_SENDTO] = SYS_sendto, [SC_RECVFROM] = SYS_recvfrom, [SC_SHUTDOWN] = SYS_shutdown,
        [SC_SETSOCKOPT] = SYS_setsockopt, [SC_GETSOCKOPT] = SYS_getsockopt,
        [SC_SENDMSG] = SYS_sendmsg, [SC_RECVMSG] = SYS_recvmsg, [SC_ACCEPT4] = SYS_accept4,
        [SC_RECVMMSG] = SYS_recvmmsg, [SC_SENDMMSG] = SYS_sendmmsg,
    };
    if (via == VIA_SOCKETCALL) {
        uint32_t words[6] = {(uint32_t)a0, (uint32_t)a1, (uint32_t)a2, (uint32_t)a3, (uint32_t)a4, (uint32_t)a5};
        return int80(I386_SOCKETCALL, sc, lo32(low(words, sizeof words)), 0, 0, 0, 0);
    }
    if (via == VIA_INT80)
        return int80(i386_nr[sc], a0, a1, a2, a3, a4, a5);
    return syscall(x64_nr[sc], a0, a1, a2, a3, a4, a5);
#else
    if (via == VIA_SOCKETCALL) {
        unsigned long words[6] = {a0, a1, a2, a3, a4, a5};
        return syscall(SYS_socketcall, sc, words);
    }
    return syscall(i386_nr[sc], a0, a1, a2, a3, a4, a5);
#endif
}

/* From 64-bit code through int $0x80 the kernel expects i386 pointers and layouts. */
static int compat(void) {
#if defined(__x86_64__)
    return via == VIA_SOCKETCALL || via == VIA_INT80;
#else
    return 0;
#endif
}

static long P(const void *p, size_t n) { return compat() ? (long)lo32(low(p, n)) : (long)(uintptr_t)p; }

/* --- the socket calls ---------------------------------------------------------------- */
static int s_socket(int f, int t, int p) {
    int fd = via == VIA_LIBC ? socket(f, t, p) : (int)call(SC_SOCKET, f, t, p, 0, 0, 0);
    if (fd >= 0 && send_timeout_ms) {
        struct timeval tv = {send_timeout_ms / 1000, (send_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}
static int s_connect(int fd, const void *sa, socklen_t len) {
    return via == VIA_LIBC ? connect(fd, sa, len) : (int)call(SC_CONNECT, fd, P(sa, len), len, 0, 0, 0);
}
static int s_bind(int fd, const void *sa, socklen_t len) {
    return via == VIA_LIBC ? bind(fd, sa, len) : (int)call(SC_BIND, fd, P(sa, len), len, 0, 0, 0);
}
static int s_listen(int fd, int backlog) {
    return via == VIA_LIBC ? listen(fd, backlog) : (int)call(SC_LISTEN, fd, backlog, 0, 0, 0, 0);
}
static long s_send(int fd, const void *buf, size_t len) {
    if (via == VIA_LIBC) return send(fd, buf, len, 0);
    if (via == VIA_SOCKETCALL) return call(SC_SEND, fd, P(buf, len), len, 0, 0, 0);
    return call(SC_SENDTO, fd, P(buf, len), len, 0, 0, 0);
}
static long s_recv(int fd, void *buf, size_t len) {
    if (via == VIA_LIBC) return recv(fd, buf, len, 0);
    void *target = compat() ? low(NULL, len) : buf;
    long n = via == VIA_SOCKETCALL ? call(SC_RECV, fd, (long)(uintptr_t)target, len, 0, 0, 0)
                                   : call(SC_RECVFROM, fd, (long)(uintptr_t)target, len, 0, 0, 0);
    if (n > 0 && target != buf) memcpy(buf, target, n);
    return n;
}
static long s_sendto(int fd, const void *buf, size_t len, int flags, const void *sa, socklen_t salen) {
    if (via == VIA_LIBC) return sendto(fd, buf, len, flags, sa, salen);
    return call(SC_SENDTO, fd, P(buf, len), len, flags, sa ? P(sa, salen) : 0, salen);
}
static int s_getsockname(int fd, void *sa, socklen_t *len) {
    if (via == VIA_LIBC) return getsockname(fd, sa, len);
    if (!compat()) return (int)call(SC_GETSOCKNAME, fd, (long)(uintptr_t)sa, (long)(uintptr_t)len, 0, 0, 0);
    void *lsa = low(NULL, *len); socklen_t *llen = low(len, sizeof *len);
    int r = (int)call(SC_GETSOCKNAME, fd, lo32(lsa), lo32(llen), 0, 0, 0);
    memcpy(sa, lsa, *llen); *len = *llen;
    return r;
}
static int s_socketpair(int f, int t, int p, int sv[2]) {
    if (via == VIA_LIBC) return socketpair(f, t, p, sv);
    int *target = compat() ? low(NULL, 2 * sizeof(int)) : sv;
    int r = (int)call(SC_SOCKETPAIR, f, t, p, (long)(uintptr_t)target, 0, 0);
    if (target != sv) memcpy(sv, target, 2 * sizeof(int));
    return r;
}

struct compat_iovec { uint32_t base, len; };
struct compat_msghdr { uint32_t name; int32_t namelen; uint32_t iov, iovlen, control, controllen; int32_t flags; };
struct compat_mmsghdr { struct compat_msghdr hdr; uint32_t len; };

static long s_sendmsg(int fd, const void *sa, socklen_t salen, const char *data) {
    size_t len = strlen(data);
    if (compat()) {
        struct compat_iovec iov = {lo32(low(data, len)), (uint32_t)len};
        struct compat_msghdr m = {lo32(low(sa, salen)), (int32_t)salen, lo32(low(&iov, sizeof iov)), 1, 0, 0, 0};
        return call(SC_SENDMSG, fd, lo32(low(&m, sizeof m)), 0, 0, 0, 0);
    }
    struct iovec iov = {(void *)data, len};
    struct msghdr m = {(void *)sa, salen, &iov, 1, NULL, 0, 0};
    return via == VIA_LIBC ? sendmsg(fd, &m, 0) : call(SC_SENDMSG, fd, (long)(uintptr_t)&m, 0, 0, 0, 0);
}

static long s_sendmmsg(int fd, const void *sa, socklen_t salen, const char *data, int n) {
    size_t len = strlen(data);
    if (compat()) {
        struct compat_iovec iov = {lo32(low(data, len)), (uint32_t)len};
        struct compat_mmsghdr v[64];
        memset(v, 0, sizeof v);
        for (int i = 0; i < n; i++)
            v[i].hdr = (struct compat_msghdr){lo32(low(sa, salen)), (int32_t)salen, lo32(low(&iov, sizeof iov)), 1, 0, 0, 0};
        return call(SC_SENDMMSG, fd, lo32(low(v, n * sizeof v[0])), n, 0, 0, 0);
    }
    struct iovec iov = {(void *)data, len};
    struct mmsghdr v[64];
    memset(v, 0, sizeof v);
    for (int i = 0; i < n; i++) v[i].msg_hdr = (struct msghdr){(void *)sa, salen, &iov, 1, NULL, 0, 0};
    return via == VIA_LIBC ? sendmmsg(fd, v, n, 0) : call(SC_SENDMMSG, fd, (long)(uintptr_t)v, n, 0, 0, 0);
}

/* --- operations ---------------------------------------------------------------------- */
static socklen_t inet_address(const char *host, const char *port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (void *)ss;
    struct sockaddr_in6 *in6 = (void *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(atoi(port));
        return sizeof *in4;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(atoi(port));
        return sizeof *in6;
    }
    fprintf(stderr, "bad host %s\n", host);
    exit(98);
}

static int failures;
static long check(const char *step, long result) { report(step, result); if (result < 0) failures++; return result; }

static void op_stream(int family, const void *sa, socklen_t len) {
    int fd = (int)check("socket", s_socket(family, SOCK_STREAM, 0));
    if (fd < 0) return;
    if (check("connect", s_connect(fd, sa, len)) < 0) return;
    if (check("send", s_send(fd, "ping", 4)) < 0) return;
    char reply[16] = {0};
    check("recv", s_recv(fd, reply, sizeof reply - 1));
    close(fd);
}

static int run_op(int argc, char **argv) {
    const char *op = argv[0];
    struct sockaddr_storage ss;
    if (!strcmp(op, "tcp") && argc == 3) {
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        op_stream(ss.ss_family, &ss, len);
    } else if (!strcmp(op, "tcp-fastopen") && argc == 3) {
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        int fd = (int)check("socket", s_socket(ss.ss_family, SOCK_STREAM, 0));
        if (fd >= 0) check("sendto", s_sendto(fd, "ping", 4, MSG_FASTOPEN, &ss, len));
    } else if ((!strcmp(op, "udp") || !strcmp(op, "udp-connected") || !strcmp(op, "udp-msg")) && argc == 3) {
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        int fd = (int)check("socket", s_socket(ss.ss_family, SOCK_DGRAM, 0));
        if (fd < 0) return 1;
        if (!strcmp(op, "udp")) check("sendto", s_sendto(fd, "ping", 4, 0, &ss, len));
        else if (!strcmp(op, "udp-msg")) check("sendmsg", s_sendmsg(fd, &ss, len, "ping"));
        else if (check("connect", s_connect(fd, &ss, len)) >= 0) check("send", s_send(fd, "ping", 4));
    } else if (!strcmp(op, "udp-mmsg") && argc == 4) {
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        int fd = (int)check("socket", s_socket(ss.ss_family, SOCK_DGRAM, 0));
        if (fd >= 0) check("sendmmsg", s_sendmmsg(fd, &ss, len, "ping", atoi(argv[3])));
    } else if ((!strcmp(op, "unix") || !strcmp(op, "unix-abstract")) && argc == 2) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        size_t n = strlen(argv[1]);
        int abstract = !strcmp(op, "unix-abstract");
        memcpy(un.sun_path + abstract, argv[1], n);
        op_stream(AF_UNIX, &un, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + abstract + n + !abstract));
    } else if (!strcmp(op, "listen") && argc == 3) {
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        int fd = (int)check("socket", s_socket(ss.ss_family, SOCK_STREAM, 0));
        if (fd < 0) return 1;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (check("bind", s_bind(fd, &ss, len)) < 0) return 1;
        if (check("listen", s_listen(fd, 5)) < 0) return 1;
        socklen_t got = sizeof ss;
        check("getsockname", s_getsockname(fd, &ss, &got));
    } else if (!strcmp(op, "socket") && argc == 4) {
        check("socket", s_socket(atoi(argv[1]), atoi(argv[2]), atoi(argv[3])));
    } else if (!strcmp(op, "socketpair") && argc == 1) {
        int sv[2];
        check("socketpair", s_socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    } else if (!strcmp(op, "raw-connect") && argc == 3) {
        unsigned char raw[256];
        size_t n = strlen(argv[2]) / 2;
        for (size_t i = 0; i < n && i < sizeof raw; i++) sscanf(argv[2] + 2 * i, "%2hhx", &raw[i]);
        int fd = (int)check("socket", s_socket(atoi(argv[1]), SOCK_STREAM, 0));
        if (fd >= 0) check("connect", s_connect(fd, raw, (socklen_t)n));
    } else if ((!strcmp(op, "raw-bind") || !strcmp(op, "raw-sendto")) && argc == 3) {
        unsigned char raw[256];
        size_t n = strlen(argv[2]) / 2;
        for (size_t i = 0; i < n && i < sizeof raw; i++) sscanf(argv[2] + 2 * i, "%2hhx", &raw[i]);
        int stream = !strcmp(op, "raw-bind");
        int fd = (int)check("socket", s_socket(atoi(argv[1]), stream ? SOCK_STREAM : SOCK_DGRAM, 0));
        if (fd >= 0 && stream) check("bind", s_bind(fd, raw, (socklen_t)n));
        if (fd >= 0 && !stream) check("sendto", s_sendto(fd, "ping", 4, 0, raw, (socklen_t)n));
    } else if (!strcmp(op, "udp-mmsg-mixed") && argc == 4) {
        struct sockaddr_storage bad;
        socklen_t len = inet_address(argv[1], argv[2], &ss);
        inet_address(argv[1], argv[3], &bad);
        int fd = (int)check("socket", s_socket(ss.ss_family, SOCK_DGRAM, 0));
        struct iovec iov = {"ping", 4};
        struct mmsghdr v[2];
        memset(v, 0, sizeof v);
        v[0].msg_hdr = (struct msghdr){&ss, len, &iov, 1, NULL, 0, 0};
        v[1].msg_hdr = (struct msghdr){&bad, len, &iov, 1, NULL, 0, 0};
        if (fd >= 0) check("sendmmsg", sendmmsg(fd, v, 2, 0));
    } else if (!strcmp(op, "bad-pointer") && argc == 1) {
        int fd = (int)check("socket", s_socket(AF_INET, SOCK_STREAM, 0));
        if (fd >= 0) check("connect", via == VIA_LIBC ? connect(fd, (void *)16, 16) : call(SC_CONNECT, fd, 16, 16, 0, 0, 0));
    } else if (!strcmp(op, "bad-length") && argc == 1) {
        struct sockaddr_storage big[40] = {{0}};
        big[0].ss_family = AF_INET;
        int fd = (int)check("socket", s_socket(AF_INET, SOCK_STREAM, 0));
        if (fd >= 0) check("connect", s_connect(fd, big, 4096));
    } else if (!strcmp(op, "bad-socketcall-array") && argc == 1) {
#if defined(__x86_64__)
        check("socketcall", int80(I386_SOCKETCALL, SC_CONNECT, 16, 0, 0, 0, 0));
#else
        check("socketcall", syscall(SYS_socketcall, SC_CONNECT, (void *)16));
#endif
    } else {
        fprintf(stderr, "netprobe: bad operation\n");
        return 98;
    }
    return failures ? 1 : 0;
}

static void on_alarm(int signum) { (void)signum; }

static int repeat = 1;
static int run_ops(int argc, char **argv) {
    int status = 0;
    for (int n = 0; n < repeat; n++) status = run_op(argc, argv);
    return status;
}

struct job { int argc; char **argv; int status; };
static void *thread_main(void *arg) {
    struct job *job = arg;
    job->status = run_ops(job->argc, job->argv);
    return NULL;
}

int main(int argc, char **argv) {
    int i = 1, in_thread = 0, in_fork = 0, then = 0;
    char **self = argv;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--via") && i + 1 < argc) {
            const char *m = argv[++i];
            via = !strcmp(m, "libc") ? VIA_LIBC : !strcmp(m, "syscall") ? VIA_SYSCALL
                : !strcmp(m, "socketcall") ? VIA_SOCKETCALL : !strcmp(m, "int80") ? VIA_INT80 : -1;
            if (via < 0) { fprintf(stderr, "netprobe: bad --via\n"); return 98; }
        } else if (!strcmp(argv[i], "--alarm") && i + 1 < argc) {
            struct sigaction sa = {.sa_handler = on_alarm};  /* no SA_RESTART */
            sigaction(SIGALRM, &sa, NULL);
            alarm(atoi(argv[++i]));
        } else if (!strcmp(argv[i], "--sndtimeo") && i + 1 < argc) {
            send_timeout_ms = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
            repeat = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--then") && i + 1 < argc) {
            then = ++i;
        } else if (!strcmp(argv[i], "--thread")) {
            in_thread = 1;
        } else if (!strcmp(argv[i], "--fork")) {
            in_fork = 1;
        } else if (!strcmp(argv[i], "--exec") || !strcmp(argv[i], "--vfork-exec")) {
            /* run the rest as a new program image: the same argv without this flag */
            char **rest = calloc(argc, sizeof *rest);
            int k = 0;
            for (int j = 0; j < argc; j++) if (j != i) rest[k++] = self[j];
            if (!strcmp(argv[i], "--exec")) {
                execv("/proc/self/exe", rest);
                perror("execv");
                return 97;
            }
            pid_t pid = vfork();
            if (pid == 0) { execv("/proc/self/exe", rest); _exit(97); }
            int status;
            waitpid(pid, &status, 0);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 96;
        } else {
            fprintf(stderr, "netprobe: unknown option %s\n", argv[i]);
            return 98;
        }
    }
    if (i >= argc) { fprintf(stderr, "netprobe: no operation\n"); return 98; }
    if (in_fork) {
        pid_t pid = fork();
        if (pid == 0) _exit(in_thread ? 95 : run_ops(argc - i, argv + i));
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 96;
    }
    if (in_thread) {
        struct job job = {argc - i, argv + i, 0};
        pthread_t t;
        pthread_create(&t, NULL, thread_main, &job);
        pthread_join(t, NULL);
        return job.status;
    }
    int status = run_ops(argc - i, argv + i);
    if (then) {
        fflush(stdout);
        char **rest = calloc(argc, sizeof *rest);
        int k = 0;
        rest[k++] = argv[then];
        for (int j = 1; j < argc; j++) if (j != then && j != then - 1) rest[k++] = self[j];
        execv(argv[then], rest);
        perror("execv");
        return 97;
    }
    return status;
}
