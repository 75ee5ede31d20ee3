/* forks: make tasks until refused, to see a `processes` limit hold.
 *
 *   forks METHOD THREADS ATTEMPTS
 *
 * THREADS threads (besides the main one) start together and each tries ATTEMPTS times
 * to make a task with METHOD:
 *   fork     the C library's fork() (the clone syscall)
 *   sysfork  the fork syscall itself
 *   vfork    vfork(); the child execs this program in "hold" mode
 *   thread   pthread_create() (clone3, which the sandbox refuses, then clone)
 *   bomb     fork(), and every child does the same until refused (THREADS is 0)
 *   abandon  fork() without end, each child exiting at once, until the main thread
 *            ends the process after ATTEMPTS ms: threads die in the middle of forks
 * Every task made, and every thread, waits until all attempts are done (the tasks: until
 * the main thread closes a pipe), so that all are alive at once. Once every attempt is done, prints "made M refused R other O E" (R: failures
 * with EAGAIN; O: any other, E the first one's errno), then ends every task, exit 0.
 *
 *   forks hold FD    waits for end of file on FD, then exits (vfork's children)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *method;
static int attempts, release[2], report[2];
static atomic_int made, refused, other, first_other;
static pthread_barrier_t start;

static void hold(int fd)
{
    char byte;
    while (read(fd, &byte, 1) > 0)
        ;
}

static void *held_thread(void *unused)
{
    (void)unused;
    hold(release[0]);
    return NULL;
}

static void count_failure(int err)
{
    if (err == EAGAIN) {
        atomic_fetch_add(&refused, 1);
    } else {
        int none = 0;
        atomic_compare_exchange_strong(&first_other, &none, err);
        atomic_fetch_add(&other, 1);
    }
}

/* One attempt; in the child (fork, sysfork), hold and exit. */
static void attempt(void)
{
    if (strcmp(method, "thread") == 0) {
        pthread_t thread;
        int err = pthread_create(&thread, NULL, held_thread, NULL);
        if (err == 0) {
            pthread_detach(thread);
            atomic_fetch_add(&made, 1);
        } else {
            count_failure(err);
        }
        return;
    }
    pid_t pid;
    if (strcmp(method, "vfork") == 0) {
        pid = vfork();
        if (pid == 0) {
            char fd[16];
            snprintf(fd, sizeof fd, "%d", release[0]);
            execl("/proc/self/exe", "forks", "hold", fd, (char *)NULL);
            _exit(127);
        }
    } else {
        pid = strcmp(method, "sysfork") == 0 ? (pid_t)syscall(SYS_fork) : fork();
        if (pid == 0) {
            close(release[1]);
            hold(release[0]);
            _exit(0);
        }
    }
    if (pid > 0)
        atomic_fetch_add(&made, 1);
    else
        count_failure(errno);
}

static void *abandoning(void *unused)
{
    (void)unused;
    for (;;)
        if (fork() == 0)
            _exit(0);
    return NULL;
}

static void *worker(void *unused)
{
    (void)unused;
    pthread_barrier_wait(&start);
    for (int i = 0; i < attempts; i++)
        attempt();
    pthread_barrier_wait(&start);  /* every worker alive until all have tried */
    return NULL;
}

/* Fork until refused, in every process made; each reports 'M' for each child it made
 * and 'R' once refused, then holds. A child starts only once its parent has reported
 * it, so that no report of the child's comes before: when every process so far has
 * reported its refusal, none is still to come. */
static void bomb(void)
{
    for (;;) {
        int go[2];
        char byte = 'M';
        if (pipe(go) != 0)
            _exit(1);
        pid_t pid = fork();
        int err = errno;
        if (pid == 0) {
            close(go[1]);
            if (read(go[0], &byte, 1) != 1)
                _exit(1);
            close(go[0]);
            continue;  /* the child goes on forking */
        }
        if (pid > 0 && (write(report[1], "M", 1) != 1 || write(go[1], &byte, 1) != 1))
            _exit(1);
        close(go[0]);
        close(go[1]);
        if (pid < 0) {
            char what = err == EAGAIN ? 'R' : 'O';
            if (write(report[1], &what, 1) != 1)
                _exit(1);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        hold(atoi(argv[2]));
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: forks fork|sysfork|vfork|thread|bomb|abandon THREADS ATTEMPTS\n");
        return 2;
    }
    method = argv[1];
    int threads = atoi(argv[2]);
    attempts = atoi(argv[3]);
    if (pipe2(release, O_CLOEXEC) != 0 || fcntl(release[0], F_SETFD, 0) != 0 || pipe(report) != 0)
        return 2;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(method, "abandon") == 0) {
        pthread_t thread;
        for (int i = 0; i < threads; i++)
            if (pthread_create(&thread, NULL, abandoning, NULL) != 0)
                return 3;
        usleep(attempts * 1000);
        _exit(0);  /* every thread ends, some in the middle of a fork */
    }
    if (strcmp(method, "bomb") == 0) {
        pid_t top = getpid();
        bomb();
        if (getpid() != top) {  /* a child of the bomb: hold, then end */
            close(release[1]);
            hold(release[0]);
            _exit(0);
        }
        /* Every process reports one refusal: read until all have. */
        int made_here = 0, refusals = 0, others = 0;
        char what;
        while (refusals + others < made_here + 1 && read(report[0], &what, 1) == 1) {
            made_here += what == 'M';
            refusals += what == 'R';
            others += what == 'O';
        }
        atomic_store(&made, made_here);
        atomic_store(&refused, refusals);
        atomic_store(&other, others);
    } else {
        pthread_t workers[64];
        if (threads < 1 || threads > 64)
            return 2;
        pthread_barrier_init(&start, NULL, threads);
        for (int i = 0; i < threads; i++)
            if (pthread_create(&workers[i], NULL, worker, NULL) != 0)
                return 3;
        for (int i = 0; i < threads; i++)
            pthread_join(workers[i], NULL);
    }
    int err = atomic_load(&first_other);
    printf("made %d refused %d other %d %s\n", atomic_load(&made), atomic_load(&refused),
           atomic_load(&other), err == 0 ? "-" : strerrorname_np(err));
    close(release[1]);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 0;
}
