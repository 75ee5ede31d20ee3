/* exe: pass other code off as an executable an `exe` rule allows.
 *
 *   exe wait                  sleep 10 s (a copy of this program is the allowed one)
 *   exe mem ALLOWED           fork; the child execs ALLOWED wait; once it runs, write into
 *                             its memory: open /proc/PID/mem and /proc/PID/task/PID/mem
 *                             for writing, process_vm_writev one byte onto its stack
 *   exe setmm ALLOWED HOST PORT
 *                             name ALLOWED as this process's executable
 *                             (prctl PR_SET_MM_EXE_FILE), then connect to HOST:PORT
 *
 * Each step prints "NAME OK" or "NAME ERR <ERRNO>".
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_SET_MM
#define PR_SET_MM 35
#endif
#ifndef PR_SET_MM_EXE_FILE
#define PR_SET_MM_EXE_FILE 13
#endif

static void say(const char *step, long result) {
    if (result < 0)
        printf("%s ERR %s\n", step, strerrorname_np(errno));
    else
        printf("%s OK\n", step);
    fflush(stdout);
}

static unsigned long stack_of(pid_t pid) {
    char path[64], line[512];
    unsigned long start = 0, end;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    if (!maps) return 0;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &start, &end) == 2) break;
    fclose(maps);
    return start;
}

static int mem(const char *allowed) {
    char real[PATH_MAX], exe[PATH_MAX], path[96];
    if (!realpath(allowed, real)) { perror("realpath"); return 99; }
    pid_t child = fork();
    if (child == 0) {
        execl(allowed, allowed, "wait", (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "/proc/%d/exe", child);
    for (int tries = 0; tries < 500; tries++) {  /* until it runs the allowed image */
        ssize_t n = readlink(path, exe, sizeof exe - 1);
        if (n > 0) { exe[n] = 0; if (!strcmp(exe, real)) break; }
        usleep(10000);
    }
    snprintf(path, sizeof path, "/proc/%d/mem", child);
    int fd = open(path, O_RDWR);
    say("mem", fd);
    snprintf(path, sizeof path, "/proc/%d/task/%d/mem", child, child);
    int task_fd = open(path, O_WRONLY);
    say("task-mem", task_fd);
    char byte = 0;
    struct iovec local = {&byte, 1}, remote = {(void *)stack_of(child), 1};
    say("process_vm_writev", process_vm_writev(child, &local, 1, &remote, 1, 0));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}

static int setmm(const char *allowed, const char *host, int port) {
    int exe = open(allowed, O_RDONLY);
    if (exe < 0) { perror("open"); return 99; }
    say("prctl", syscall(SYS_prctl, PR_SET_MM, PR_SET_MM_EXE_FILE, exe, 0, 0));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &to.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    say("connect", connect(s, (struct sockaddr *)&to, sizeof to));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "wait")) { sleep(10); return 0; }
    if (argc == 3 && !strcmp(argv[1], "mem")) return mem(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "setmm")) return setmm(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: exe wait | mem ALLOWED | setmm ALLOWED HOST PORT\n");
    return 2;
}
