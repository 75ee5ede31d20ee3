/* load: many processes and threads making socket calls at once.
 *
 *   load calls PROCS THREADS ROUNDS TCP_OK TCP_DENIED UDP_OK UDP_DENIED
 *       PROCS processes of THREADS threads, started together; each thread, ROUNDS
 *       times: connect to 127.0.0.1:TCP_OK (must work), to TCP_DENIED (must fail with
 *       EACCES), a datagram to UDP_OK (must be sent) and to UDP_DENIED (EACCES).
 *       Prints "done CALLS wrong N"; exits 1 if any result was not the expected one.
 *   load exec THREADS TCP_OK main|thread
 *       THREADS threads connect in a loop while the main thread (or another) execs
 *       this program again, which prints "exec'd".
 *   load kill PROCS TCP_OK
 *       PROCS children connect in a loop and are killed (SIGKILL) at random moments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int rounds, tcp_ok, tcp_denied, udp_ok, udp_denied;
static atomic_int wrong;

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return address;
}

static int tcp_connect(int port) {
    struct sockaddr_in address = loopback(port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int result = connect(fd, (struct sockaddr *)&address, sizeof address);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

static int udp_send(int port) {
    struct sockaddr_in address = loopback(port);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int result = (int)sendto(fd, "p", 1, 0, (struct sockaddr *)&address, sizeof address);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

static void expect(const char *what, int result, int wanted, int wanted_errno) {
    if (result == wanted && (result >= 0 || errno == wanted_errno)) return;
    atomic_fetch_add(&wrong, 1);
    fprintf(stderr, "WRONG pid %d %s: %d (%s)\n", getpid(), what, result, strerror(errno));
}

static void *calls(void *unused) {
    (void)unused;
    for (int i = 0; i < rounds; i++) {
        expect("tcp allowed", tcp_connect(tcp_ok), 0, 0);
        expect("tcp denied", tcp_connect(tcp_denied), -1, EACCES);
        expect("udp allowed", udp_send(udp_ok), 1, 0);
        expect("udp denied", udp_send(udp_denied), -1, EACCES);
    }
    return NULL;
}

static int run_threads(int threads, void *(*body)(void *)) {
    pthread_t ids[threads];
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, body, NULL);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    return atomic_load(&wrong);
}

static int calls_mode(int procs, int threads) {
    int start[2];
    if (pipe(start)) return 97;
    for (int p = 0; p < procs; p++) {
        if (fork() == 0) {
            char go;
            close(start[1]);
            if (read(start[0], &go, 1) < 0) _exit(97);  /* returns 0 when all are forked */
            _exit(run_threads(threads, calls) ? 1 : 0);
        }
    }
    close(start[1]);
    int failed = 0, status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status)) failed++;
    printf("done %d wrong %d\n", procs * threads * rounds * 4, failed);
    return failed ? 1 : 0;
}

static void *connect_forever(void *unused) {
    (void)unused;
    for (;;) tcp_connect(tcp_ok);
    return NULL;
}

static char *self_path;
static void *exec_again(void *unused) {
    (void)unused;
    usleep(100000);
    execl(self_path, self_path, "exec'd", (char *)NULL);
    perror("execl");
    _exit(97);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "exec'd")) { printf("exec'd\n"); return 0; }
    if (argc == 9 && !strcmp(argv[1], "calls")) {
        rounds = atoi(argv[4]);
        tcp_ok = atoi(argv[5]), tcp_denied = atoi(argv[6]);
        udp_ok = atoi(argv[7]), udp_denied = atoi(argv[8]);
        return calls_mode(atoi(argv[2]), atoi(argv[3]));
    }
    if (argc == 5 && !strcmp(argv[1], "exec")) {
        self_path = realpath("/proc/self/exe", NULL);
        tcp_ok = atoi(argv[3]);
        pthread_t id;
        for (int i = 0; i < atoi(argv[2]); i++) pthread_create(&id, NULL, connect_forever, NULL);
        if (!strcmp(argv[4], "thread")) pthread_create(&id, NULL, exec_again, NULL);
        else exec_again(NULL);
        pause();
    }
    if (argc == 4 && !strcmp(argv[1], "kill")) {
        int procs = atoi(argv[2]);
        tcp_ok = atoi(argv[3]);
        srand((unsigned)getpid());
        for (int p = 0; p < procs; p++) {
            pid_t child = fork();
            if (child == 0) connect_forever(NULL);
            struct timespec moment = {0, (rand() % 20) * 1000000L};
            nanosleep(&moment, NULL);
            kill(child, SIGKILL);
        }
        int killed = 0, status;
        while (wait(&status) > 0)
            killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        printf("killed %d\n", killed);
        return killed == procs ? 0 : 1;
    }
    fprintf(stderr, "usage: see the comment at the top of load.c\n");
    return 98;
}
