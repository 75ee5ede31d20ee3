/* The supervisor's hot path: waiting for stops, and serving in C the calls whose
 * verdict the Python supervisor has already reached for the same facts.
 *
 * A connect to an IP address, and a sendto from a UDP-like (datagram) IP socket that
 * names a destination, are judged on the thread's executable, the socket's family,
 * type and protocol, and the sockaddr bytes: nothing else. Once the supervisor has
 * judged such a call in Python, it files the verdict under those facts (the
 * executable picks the table, `key()` makes the entry's name). A later stop with the
 * same facts is served here with the same verdict, and an allowed call is performed
 * as emulate.py performs it: on a pidfd_getfd copy of the socket, with the bytes read,
 * so that what the tracee changes after the read changes nothing.
 *
 * The calls the kernel makes itself once allowed (socket, a send naming no
 * destination, a receive, accept, a socket option, getsockname) are filed under the registers' facts that
 * decide them and, where the profile asks, their socket's family, type and protocol,
 * read from a pidfd_getfd copy at each stop. Those are served here only where the
 * descriptor cannot name another socket when the kernel looks it up: the thread is
 * stopped, and no other task shares its descriptor table (Python's `alone` set). A
 * socketcall is read once (its argument array, copied at the stop) and, allowed, run
 * as the direct i386 syscall with the words read, in registers, which are restored
 * at its exit as Python restores them.
 *
 * Anything else goes back to Python untouched: other stops and events, a fact that
 * cannot be read, a verdict not filed. A call that must wait goes back performed,
 * for Python to make the tracee wait.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define GET_SYSCALL_INFO 0x420e
#define SYSCALL_INFO_SECCOMP 3
#define EVENT_SECCOMP 7
#define SECCOMP_STOP (SIGTRAP | (EVENT_SECCOMP << 8))
#define MSG_CMSG_COMPAT_FLAG 0x80000000u /* only sendmsg refuses it; sendto drops it */
#define MAX_ADDRLEN 128      /* sizeof(struct sockaddr_storage): longer is EINVAL */
#define MAX_DATAGRAM 65536   /* above any UDP payload; a longer send is Python's */
#define BATCH 256            /* stops taken from waitpid before any is served */
#define KEY_INTS 5           /* call, plain, family, type, protocol: the head of a key */
#define NO_FACT (-1)         /* a fact the verdict does not rest on, in a key */

/* The calls served here; SOCKETCALL stands for socketcall(102), which carries one. */
enum call {
    CONNECT, SENDTO, SEND, RECV, RECVFROM, RECVMSG, SETSOCKOPT, GETSOCKOPT, SOCKET, ACCEPT,
    ACCEPT4, GETSOCKNAME, GETPEERNAME, CALLS, SOCKETCALL = CALLS
};
static const char *const call_names[CALLS + 1] = {
    "connect", "sendto", "send", "recv", "recvfrom", "recvmsg", "setsockopt", "getsockopt",
    "socket", "accept", "accept4", "getsockname", "getpeername", "socketcall"};
#define MAX_SERVED 32  /* syscalls served here, over both ABIs */
#define MAX_SUBCALL 20 /* socketcall's subcall numbers are 1..20 */

/* A syscall served here: its arch and number (which Python gives, from libseccomp),
 * the call it makes, and the mask of its ABI's word. */
struct served_syscall {
    uint32_t arch;
    uint64_t nr;
    enum call call;
    uint64_t word_mask;
};

/* A socketcall subcall served here: how many words its array holds, and the direct
 * i386 syscall it runs as once allowed (Python's, from libseccomp). */
struct subcall {
    int served;
    enum call call;
    int nargs;
    uint64_t direct_nr;
};

/* A socketcall run as its direct syscall: the registers to restore at its exit. */
struct rewrite {
    pid_t tid;
    struct user_regs_struct regs;
};

/* The kernel's struct ptrace_syscall_info, as far as a seccomp stop fills it. */
struct syscall_info {
    uint8_t op;
    uint8_t pad[3];
    uint32_t arch;
    uint64_t instruction_pointer;
    uint64_t stack_pointer;
    uint64_t nr;
    uint64_t args[6];
    uint32_t ret_data;
    uint32_t pad2;
};

/* Connect as the tracee's call would, without ever blocking the supervisor: a
 * blocking stream socket is connected in non-blocking mode for the moment of the call
 * (no other user of the open file can notice, it is not connected yet). On loopback
 * the handshake completes within the call, so a second connect moves the socket to
 * connected and tells how it ended; elsewhere it says EALREADY and the tracee must
 * wait. Returns the result (-errno on failure) and whether the file was blocking. */
static long connect_without_blocking(int fd, int type, const void *address,
                                     socklen_t length, int *blocking)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    *blocking = !(flags & O_NONBLOCK);
    int stream = (type & 0xf) == SOCK_STREAM || (type & 0xf) == SOCK_SEQPACKET;
    if (!(*blocking && stream))
        return connect(fd, address, length) < 0 ? -errno : 0;
    if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    long result = connect(fd, address, length) < 0 ? -errno : 0;
    if (result == -EINPROGRESS)
        result = connect(fd, address, length) < 0 ? -errno : 0;
    int saved = errno;
    fcntl(fd, F_SETFL, flags);
    errno = saved;
    return result;
}

/* Send as the tracee's call would, without ever blocking the supervisor (MSG_DONTWAIT).
 * Returns the result (-errno on failure) and sets `blocking` when the tracee's call
 * would have waited for room instead: no room (EAGAIN; EINPROGRESS for a Fast Open
 * connect under way) on a call that did not ask not to wait, on a blocking file. */
static long send_without_blocking(int fd, struct msghdr *message, int flags, int *blocking)
{
    ssize_t sent = sendmsg(fd, message, flags | MSG_DONTWAIT);
    long result = sent < 0 ? -errno : sent;
    *blocking = 0;
    if ((result == -EAGAIN || result == -EINPROGRESS) && !(flags & MSG_DONTWAIT)) {
        int file_flags = fcntl(fd, F_GETFL);
        *blocking = file_flags >= 0 && !(file_flags & O_NONBLOCK);
    }
    return result;
}

/* The start of the address space is never mapped (vm.mmap_min_addr): the kernel, handed
 * data there, fails with EFAULT as it would have copying the tracee's unreadable data. */
#define FAULTING_ADDRESS 4096

static PyObject *fastpath_sendmsg(PyObject *module, PyObject *args)
{
    int fd, blocking;
    unsigned int flags; /* as the kernel takes them: a word of bits, unchecked */
    PyObject *data;
    Py_buffer control, name;
    if (!PyArg_ParseTuple(args, "iOy*Iz*", &fd, &data, &control, &flags, &name))
        return NULL;
    Py_buffer payload = {0};
    struct iovec iov;
    if (PyLong_Check(data)) { /* that many bytes of unreadable data */
        iov.iov_base = (void *)FAULTING_ADDRESS;
        iov.iov_len = PyLong_AsSize_t(data);
    } else if (PyObject_GetBuffer(data, &payload, PyBUF_SIMPLE) == 0) {
        iov.iov_base = payload.buf;
        iov.iov_len = payload.len;
    }
    long result = 0;
    if (!PyErr_Occurred()) {
        struct msghdr message = {name.buf, name.buf ? name.len : 0, &iov, 1,
                                 control.len ? control.buf : NULL, control.len, 0};
        Py_BEGIN_ALLOW_THREADS
        result = send_without_blocking(fd, &message, (int)flags, &blocking);
        Py_END_ALLOW_THREADS
    }
    if (payload.obj != NULL)
        PyBuffer_Release(&payload);
    PyBuffer_Release(&control);
    if (name.obj != NULL)
        PyBuffer_Release(&name);
    return PyErr_Occurred() ? NULL : Py_BuildValue("(lO)", result, blocking ? Py_True : Py_False);
}

static PyObject *fastpath_syscall_info(PyObject *module, PyObject *tid_arg)
{
    pid_t tid = (pid_t)PyLong_AsLong(tid_arg);
    if (PyErr_Occurred())
        return NULL;
    struct syscall_info info;
    if (ptrace(GET_SYSCALL_INFO, tid, sizeof info, &info) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(BkK(KKKKKK)K)", info.op, (unsigned long)info.arch,
                         (unsigned long long)info.nr, (unsigned long long)info.args[0],
                         (unsigned long long)info.args[1], (unsigned long long)info.args[2],
                         (unsigned long long)info.args[3], (unsigned long long)info.args[4],
                         (unsigned long long)info.args[5],
                         (unsigned long long)info.instruction_pointer);
}

static PyObject *fastpath_connect(PyObject *module, PyObject *args)
{
    int fd, type, blocking = 0;
    Py_buffer address;
    if (!PyArg_ParseTuple(args, "iiy*", &fd, &type, &address))
        return NULL;
    long result;
    Py_BEGIN_ALLOW_THREADS
    result = connect_without_blocking(fd, type, address.buf, (socklen_t)address.len, &blocking);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&address);
    return Py_BuildValue("(lO)", result, blocking ? Py_True : Py_False);
}

/* SO_SNDTIMEO in ns, which bounds how long a blocking call waits; 0: no bound. */
static long long send_timeout_ns(int fd)
{
    struct timeval timeout = {0, 0};
    socklen_t length = sizeof timeout;
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, &length);
    return timeout.tv_sec * 1000000000LL + timeout.tv_usec * 1000LL;
}

static PyObject *fastpath_send_timeout_ns(PyObject *module, PyObject *fd)
{
    int descriptor = PyObject_AsFileDescriptor(fd);
    return descriptor < 0 ? NULL : PyLong_FromLongLong(send_timeout_ns(descriptor));
}

/* The name a verdict is filed under: the call, whether it is its plain form (a recvfrom
 * with no address buffer, socketcall's send and recv), the socket's family, type and
 * protocol (socket's own arguments; NO_FACT where the verdict does not rest on them)
 * as native ints, then the rest: the sockaddr exactly as read, or a socket option's
 * level and number as 32-bit words. */
static PyObject *make_key(const int head[KEY_INTS], const char *address, Py_ssize_t length)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, sizeof(int) * KEY_INTS + length);
    if (key == NULL)
        return NULL;
    char *bytes = PyBytes_AS_STRING(key);
    memcpy(bytes, head, sizeof(int) * KEY_INTS);
    memcpy(bytes + sizeof(int) * KEY_INTS, address, length);
    return key;
}

/* The call of that name (SOCKETCALL included where `socketcall` allows it), or -1
 * with ValueError set. */
static int call_named(const char *name, int socketcall)
{
    for (int call = 0; call < CALLS + socketcall; call++)
        if (!strcmp(name, call_names[call]))
            return call;
    PyErr_Format(PyExc_ValueError, "no fast path for %s", name);
    return -1;
}

static PyObject *fastpath_key(PyObject *module, PyObject *args)
{
    const char *name;
    int head[KEY_INTS], plain;
    Py_buffer extra;
    if (!PyArg_ParseTuple(args, "spiiiy*", &name, &plain, &head[2], &head[3], &head[4], &extra))
        return NULL;
    head[0] = call_named(name, 0);
    head[1] = plain;
    PyObject *key = head[0] < 0 ? NULL : make_key(head, extra.buf, extra.len);
    PyBuffer_Release(&extra);
    return key;
}

typedef struct {
    PyObject_HEAD
    PyObject *threads;                  /* the supervisor's dict: tid -> tracee.ThreadState */
    PyObject *alone;                    /* sharing.Tables' set of tids sharing no table */
    struct served_syscall served[MAX_SERVED];
    int served_count;
    struct subcall subcalls[MAX_SUBCALL + 1];
    int reads_socket[CALLS];            /* the key holds the socket's facts */
    int needs_alone[CALLS];             /* the verdict may rest on what the descriptor names */
    struct rewrite *rewrites;           /* socketcalls running as their direct syscall */
    int rewrite_count, rewrite_room;
    char *datagram;                     /* MAX_DATAGRAM bytes: a send's payload */
    unsigned long long stops;           /* stops served here */
    unsigned long long decided[CALLS][2]; /* per call: allowed, denied */
} Server;

enum served { NOT_SERVED, SERVED, MUST_WAIT, FAILED };

/* A call performed here that the tracee must now wait for (in Python's hands). */
struct under_way {
    enum call call;
    uint32_t arch;
    int family;
    int fd;
    long result;
    long long send_timeout_ns; /* SO_SNDTIMEO, which bounds the wait; 0: none */
};

/* One stop's call, as read from the tracee. */
struct stopped_call {
    enum call call;
    uint32_t arch;
    const struct subcall *via; /* the subcall, through socketcall; NULL: direct */
    uint64_t args[6];          /* masked to the ABI's word; socketcall's words as read */
    int fd;
    int performed;             /* performed here (with an address), not by the kernel */
    char address[MAX_ADDRLEN];
    int address_length;
    uint64_t data;      /* sendto: the payload's address */
    size_t data_length; /* sendto */
    int flags;          /* sendto */
};

static int socket_facts(int fd, int facts[3])
{
    static const int options[3] = {SO_DOMAIN, SO_TYPE, SO_PROTOCOL};
    for (int i = 0; i < 3; i++) {
        socklen_t length = sizeof facts[i];
        if (getsockopt(fd, SOL_SOCKET, options[i], &facts[i], &length) < 0)
            return -1;
    }
    return 0;
}


static int read_tracee(pid_t tid, void *into, uint64_t from, size_t length)
{
    struct iovec ours = {into, length};
    struct iovec theirs = {(void *)(uintptr_t)from, length};
    return length == 0 || process_vm_readv(tid, &ours, 1, &theirs, 1, 0) == (ssize_t)length;
}

/* What the supervisor keeps about this thread, if it lets C serve it: the thread's
 * pidfd (-1: none opened yet) and its table of filed verdicts (a borrowed dict); 0 if
 * it does not. */
static int servable(Server *self, pid_t tid, int *pidfd, PyObject **verdicts)
{
    PyObject *key = PyLong_FromLong(tid);
    if (key == NULL)
        return -1;
    PyObject *thread = PyDict_GetItemWithError(self->threads, key);
    Py_DECREF(key);
    if (thread == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *table = PyObject_GetAttrString(thread, "verdicts");
    if (table == NULL)
        return -1;
    Py_DECREF(table); /* the ThreadState keeps it alive for the stop */
    if (!PyDict_Check(table))
        return 0;
    PyObject *fd = PyObject_GetAttrString(thread, "pidfd");
    if (fd == NULL)
        return -1;
    *pidfd = fd == Py_None ? -1 : (int)PyLong_AsLong(fd);
    Py_DECREF(fd);
    if (PyErr_Occurred())
        return -1;
    *verdicts = table;
    return 1;
}

/* Whether no other task shares the thread's descriptor table (sharing.py), so that,
 * the thread being stopped, its descriptors name what they name now when the kernel
 * looks them up. */
static int alone(Server *self, pid_t tid)
{
    PyObject *key = PyLong_FromLong(tid);
    if (key == NULL)
        return -1;
    int found = PySet_Contains(self->alone, key);
    Py_DECREF(key);
    return found;
}

/* The call at this stop, if it is one served here, with its socketcall array and
 * address read; the bounds are the kernel's (a call outside them gets its errno from
 * Python). */
static int read_call(Server *self, pid_t tid, struct stopped_call *stopped)
{
    struct syscall_info info;
    if (ptrace(GET_SYSCALL_INFO, tid, sizeof info, &info) < 0 || info.op != SYSCALL_INFO_SECCOMP)
        return 0;
    int which = 0;
    while (which < self->served_count &&
           (self->served[which].arch != info.arch || self->served[which].nr != info.nr))
        which++;
    if (which == self->served_count)
        return 0;
    uint64_t mask = self->served[which].word_mask;
    stopped->arch = info.arch;
    stopped->via = NULL;
    if (self->served[which].call == SOCKETCALL) {
        uint64_t number = info.args[0] & mask;
        if (number > MAX_SUBCALL || !self->subcalls[number].served)
            return 0;
        stopped->via = &self->subcalls[number];
        uint32_t words[6] = {0};
        /* Read once: what the tracee writes there later is never looked at again. */
        if (!read_tracee(tid, words, info.args[1] & mask, sizeof(uint32_t) * stopped->via->nargs))
            return 0;
        for (int i = 0; i < 6; i++)
            stopped->args[i] = words[i];
        stopped->call = stopped->via->call;
    } else {
        for (int i = 0; i < 6; i++)
            stopped->args[i] = info.args[i] & mask;
        stopped->call = self->served[which].call;
    }
    const uint64_t *args = stopped->args;
    stopped->fd = (int)args[0];
    uint64_t address;
    if (stopped->call == CONNECT) {
        address = args[1];
        stopped->address_length = (int)args[2];
    } else if (stopped->call == SENDTO && args[4] != 0 && (int)args[5] != 0) {
        address = args[4];
        stopped->address_length = (int)args[5];
        stopped->data = args[1];
        stopped->data_length = args[2];
        stopped->flags = (int)(args[3] & ~(uint64_t)MSG_CMSG_COMPAT_FLAG);
        if (stopped->data_length > MAX_DATAGRAM)
            return 0; /* too long: Python's */
    } else {
        stopped->performed = 0; /* the kernel makes it: nothing more to read */
        return 1;
    }
    stopped->performed = 1;
    if (stopped->address_length < 0 || stopped->address_length > MAX_ADDRLEN)
        return 0;
    return read_tracee(tid, stopped->address, address, stopped->address_length);
}

/* The syscall is skipped and returns `result`, then the thread runs on. A thread that
 * is gone (killed meanwhile) is no error: waitpid reports its end. */
static void finish(pid_t tid, long result)
{
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, orig_rax), -1L);
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), result);
    ptrace(PTRACE_CONT, tid, 0, 0);
}

/* Perform an allowed call on our copy of the socket; the result, and whether the
 * tracee must wait for it as a blocking call would. */
static long perform(Server *self, const struct stopped_call *stopped, int copy, int type,
                    int *must_wait)
{
    int blocking = 0;
    if (stopped->call == CONNECT) {
        long result = connect_without_blocking(copy, type, stopped->address,
                                               stopped->address_length, &blocking);
        *must_wait = blocking && (result == -EALREADY || result == -EAGAIN);
        return result;
    }
    struct iovec iov = {self->datagram, stopped->data_length};
    struct msghdr message = {(void *)stopped->address, stopped->address_length, &iov, 1, NULL, 0, 0};
    return send_without_blocking(copy, &message, stopped->flags, must_wait);
}

/* The verdict filed under `head` and `extra`: 0 allowed, an errno denied, -1 none
 * filed (-2 with a Python error). */
static long filed_verdict(PyObject *verdicts, const int head[KEY_INTS], const char *extra,
                          Py_ssize_t length)
{
    PyObject *key = make_key(head, extra, length);
    if (key == NULL)
        return -2;
    PyObject *filed = PyDict_GetItemWithError(verdicts, key);
    Py_DECREF(key);
    long verdict = filed == NULL ? -1 : PyLong_AsLong(filed);
    return PyErr_Occurred() ? -2 : verdict;
}

/* Serve the stopped call performed here, `copy` being our copy of its socket. */
static enum served serve_performed(Server *self, pid_t tid, const struct stopped_call *stopped,
                                   int copy, PyObject *verdicts, struct under_way *wait)
{
    /* Which calls are served is Python's choice alone: it files verdicts only for them. */
    int head[KEY_INTS] = {stopped->call, 0};
    int *facts = head + 2; /* family, type, protocol */
    if (socket_facts(copy, facts) < 0)
        return NOT_SERVED;
    long verdict = filed_verdict(verdicts, head, stopped->address, stopped->address_length);
    if (verdict < 0)
        return verdict == -2 ? FAILED : NOT_SERVED;
    /* A payload that cannot be read whole is Python's: it has the kernel answer it. */
    if (verdict == 0 && stopped->call == SENDTO &&
        !read_tracee(tid, self->datagram, stopped->data, stopped->data_length))
        return NOT_SERVED;

    self->stops++;
    self->decided[stopped->call][verdict > 0]++;
    if (verdict > 0) {
        finish(tid, -verdict);
        return SERVED;
    }
    int must_wait = 0;
    long result = perform(self, stopped, copy, facts[1], &must_wait);
    if (must_wait) {
        *wait = (struct under_way){stopped->call, stopped->arch, facts[0], stopped->fd, result,
                                   send_timeout_ns(copy)};
        return MUST_WAIT;
    }
    finish(tid, result);
    return SERVED;
}

/* Run a socketcall as its direct syscall with the words read, keeping the registers
 * for its exit (`returned`). 0, or -1 where the tracee's registers cannot be had. */
static int run_direct(Server *self, pid_t tid, const struct stopped_call *stopped)
{
    if (self->rewrite_count == self->rewrite_room) {
        int room = self->rewrite_room ? 2 * self->rewrite_room : 16;
        struct rewrite *grown = PyMem_RawRealloc(self->rewrites, room * sizeof *grown);
        if (grown == NULL)
            return -1;
        self->rewrites = grown, self->rewrite_room = room;
    }
    struct rewrite *slot = &self->rewrites[self->rewrite_count];
    if (ptrace(PTRACE_GETREGS, tid, 0, &slot->regs) < 0)
        return -1;
    struct user_regs_struct regs = slot->regs;
    regs.orig_rax = stopped->via->direct_nr;
    /* i386's argument registers, in order; the words beyond the subcall's are 0. */
    regs.rbx = stopped->args[0], regs.rcx = stopped->args[1], regs.rdx = stopped->args[2];
    regs.rsi = stopped->args[3], regs.rdi = stopped->args[4], regs.rbp = stopped->args[5];
    if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0)
        return -1;
    slot->tid = tid;
    self->rewrite_count++;
    ptrace(PTRACE_SYSCALL, tid, 0, 0);
    return 0;
}

/* Serve the stopped call the kernel makes once allowed. */
static enum served serve_in_kernel(Server *self, pid_t tid, const struct stopped_call *stopped,
                                   int pidfd, PyObject *verdicts)
{
    enum call call = stopped->call;
    const uint64_t *args = stopped->args;
    /* Plain: a sendto naming no destination (the only one the kernel makes), a recvfrom
     * with no address buffer, socketcall's send and recv (calls.py's aliases). */
    int plain = call == SENDTO || call == SEND || call == RECV || (call == RECVFROM && args[4] == 0);
    int head[KEY_INTS] = {call, plain, NO_FACT, NO_FACT, NO_FACT};
    uint32_t option[2] = {(uint32_t)args[1], (uint32_t)args[2]}; /* level, option */
    int options = call == SETSOCKOPT || call == GETSOCKOPT;
    if (call == SOCKET) {
        for (int i = 0; i < 3; i++)
            head[2 + i] = (int)args[i];
    } else if (self->reads_socket[call]) {
        if (self->needs_alone[call]) {
            int single = alone(self, tid);
            if (single <= 0)
                return single < 0 ? FAILED : NOT_SERVED;
        }
        int copy = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, stopped->fd, 0);
        if (copy < 0)
            return NOT_SERVED;
        int read = socket_facts(copy, head + 2);
        close(copy);
        if (read < 0)
            return NOT_SERVED;
    }
    long verdict = options ? filed_verdict(verdicts, head, (const char *)option, sizeof option)
                                      : filed_verdict(verdicts, head, NULL, 0);
    if (verdict < 0)
        return verdict == -2 ? FAILED : NOT_SERVED;
    if (verdict > 0)
        finish(tid, -verdict);
    else if (stopped->via == NULL)
        ptrace(PTRACE_CONT, tid, 0, 0);
    else if (run_direct(self, tid, stopped) < 0)
        return NOT_SERVED;
    self->stops++;
    self->decided[call][verdict > 0]++;
    return SERVED;
}

static enum served serve(Server *self, pid_t tid, struct under_way *wait)
{
    int pidfd;
    PyObject *verdicts;
    int ok = servable(self, tid, &pidfd, &verdicts);
    if (ok <= 0)
        return ok < 0 ? FAILED : NOT_SERVED;
    struct stopped_call stopped;
    if (!read_call(self, tid, &stopped))
        return NOT_SERVED;
    if (!stopped.performed)
        return serve_in_kernel(self, tid, &stopped, pidfd, verdicts);
    int copy = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, stopped.fd, 0);
    if (copy < 0)
        return NOT_SERVED;
    enum served served = serve_performed(self, tid, &stopped, copy, verdicts, wait);
    close(copy);
    return served;
}

/* The socketcall this thread runs as its direct syscall, if any: its index. */
static int rewrite_of(Server *self, pid_t tid)
{
    for (int i = 0; i < self->rewrite_count; i++)
        if (self->rewrites[i].tid == tid)
            return i;
    return -1;
}

static void drop_rewrite(Server *self, int index)
{
    self->rewrites[index] = self->rewrites[--self->rewrite_count];
}

/* At a syscall-exit stop: if it ends a socketcall run here as its direct syscall, every
 * register as it was but the result, and the thread runs on. i386 code relies on the
 * kernel keeping the argument registers, and a call restarted after a signal must
 * restart as the socketcall it was. */
static int end_rewrite(Server *self, pid_t tid)
{
    int index = rewrite_of(self, tid);
    if (index < 0)
        return 0;
    struct user_regs_struct now;
    struct rewrite *slot = &self->rewrites[index];
    if (ptrace(PTRACE_GETREGS, tid, 0, &now) == 0) {
        slot->regs.rax = now.rax;
        ptrace(PTRACE_SETREGS, tid, 0, &slot->regs);
        ptrace(PTRACE_CONT, tid, 0, 0);
    }
    drop_rewrite(self, index);
    return 1;
}

static int append(PyObject *events, PyObject *event)
{
    if (event == NULL)
        return -1;
    int failed = PyList_Append(events, event);
    Py_DECREF(event);
    return failed;
}

/* Wait for stops and serve what can be served here; return the rest, as a list of
 * (pid, status) for Python to handle, or (pid, call, arch, family, fd, result,
 * send_timeout_ns) for a call performed here whose tracee must now wait (judged and
 * counted). All stops already waiting are taken before any is served: waitpid(-1)
 * reports the earliest tracee first, which would otherwise keep the others waiting. */
static PyObject *server_serve(Server *self, PyObject *drain_arg)
{
    int drain = PyObject_IsTrue(drain_arg);
    if (drain < 0)
        return NULL;
    PyObject *events = PyList_New(0);
    if (events == NULL)
        return NULL;
    while (PyList_GET_SIZE(events) == 0) {
        pid_t pids[BATCH];
        int statuses[BATCH];
        int taken = 0;
        pid_t pid;
        Py_BEGIN_ALLOW_THREADS
        pid = waitpid(-1, &statuses[0], __WALL);
        Py_END_ALLOW_THREADS
        if (pid < 0) {
            if (errno == EINTR && PyErr_CheckSignals() == 0)
                continue;
            if (!PyErr_Occurred())
                PyErr_SetFromErrno(PyExc_OSError);
            Py_DECREF(events);
            return NULL;
        }
        pids[taken++] = pid;
        while (drain && taken < BATCH &&
               (pid = waitpid(-1, &statuses[taken], __WALL | WNOHANG)) > 0)
            pids[taken++] = pid;

        for (int i = 0; i < taken; i++) {
            struct under_way wait;
            enum served served = NOT_SERVED;
            if (WIFSTOPPED(statuses[i]) && statuses[i] >> 8 == SECCOMP_STOP)
                served = serve(self, pids[i], &wait);
            else if (WIFSTOPPED(statuses[i]) && WSTOPSIG(statuses[i]) == (SIGTRAP | 0x80))
                served = end_rewrite(self, pids[i]) ? SERVED : NOT_SERVED;
            if (served == FAILED ||
                (served == NOT_SERVED &&
                 append(events, Py_BuildValue("(ii)", pids[i], statuses[i])) < 0) ||
                (served == MUST_WAIT &&
                 append(events, Py_BuildValue("(isIiilL)", pids[i], call_names[wait.call],
                                              wait.arch, wait.family, wait.fd, wait.result,
                                              wait.send_timeout_ns)) < 0)) {
                Py_DECREF(events);
                return NULL;
            }
        }
    }
    return events;
}

/* Every decision made here, as the supervisor counts them: {(call, action): n}. */
static PyObject *server_decisions(Server *self, PyObject *unused)
{
    static const char *const actions[2] = {"allow", "deny"};
    PyObject *counts = PyDict_New();
    for (int call = 0; counts != NULL && call < CALLS; call++) {
        for (int action = 0; action < 2; action++) {
            if (self->decided[call][action] == 0)
                continue;
            PyObject *key = Py_BuildValue("(ss)", call_names[call], actions[action]);
            PyObject *count = PyLong_FromUnsignedLongLong(self->decided[call][action]);
            if (key == NULL || count == NULL || PyDict_SetItem(counts, key, count) < 0)
                Py_CLEAR(counts);
            Py_XDECREF(key);
            Py_XDECREF(count);
            if (counts == NULL)
                break;
        }
    }
    return counts;
}

/* server.returned(tid): at a syscall-exit stop Python took (one held while other
 * threads were kept still): whether it ended a socketcall run here, now restored. */
static PyObject *server_returned(Server *self, PyObject *tid)
{
    long number = PyLong_AsLong(tid);
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(end_rewrite(self, (pid_t)number));
}

/* server.forget(tid): the thread is gone; nothing of its is kept. */
static PyObject *server_forget(Server *self, PyObject *tid)
{
    long number = PyLong_AsLong(tid);
    if (PyErr_Occurred())
        return NULL;
    int index = rewrite_of(self, (pid_t)number);
    if (index >= 0)
        drop_rewrite(self, index);
    Py_RETURN_NONE;
}

/* The names in a sequence, as a flag per call. */
static int flags_of(PyObject *names, int flags[CALLS])
{
    PyObject *entries = PySequence_Fast(names, "call names must be a sequence");
    if (entries == NULL)
        return -1;
    memset(flags, 0, sizeof(int) * CALLS);
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(entries); i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(entries, i));
        int call = name == NULL ? -1 : call_named(name, 0);
        if (call < 0) {
            Py_DECREF(entries);
            return -1;
        }
        flags[call] = 1;
    }
    Py_DECREF(entries);
    return 0;
}

static int server_init(Server *self, PyObject *args, PyObject *kwargs)
{
    PyObject *threads, *served, *subcalls, *reads_socket, *needs_alone, *single;
    if (!PyArg_ParseTuple(args, "O!OOOOO!", &PyDict_Type, &threads, &served, &subcalls,
                          &reads_socket, &needs_alone, &PySet_Type, &single))
        return -1;
    PyObject *entries = PySequence_Fast(served, "served syscalls must be a sequence");
    if (entries == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(entries);
    if (count > MAX_SERVED) {
        Py_DECREF(entries);
        PyErr_SetString(PyExc_ValueError, "too many served syscalls");
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name;
        struct served_syscall *entry = &self->served[i];
        unsigned long arch;
        unsigned long long nr, mask;
        int call = -1;
        if (PyArg_ParseTuple(PySequence_Fast_GET_ITEM(entries, i), "kKsK", &arch, &nr, &name, &mask))
            call = call_named(name, 1);
        if (call < 0) {
            Py_DECREF(entries);
            return -1;
        }
        entry->arch = arch, entry->nr = nr, entry->word_mask = mask, entry->call = call;
    }
    Py_DECREF(entries);
    self->served_count = (int)count;

    memset(self->subcalls, 0, sizeof self->subcalls);
    if ((entries = PySequence_Fast(subcalls, "subcalls must be a sequence")) == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(entries); i++) {
        const char *name;
        int number, nargs, call = -1;
        unsigned long long direct;
        if (PyArg_ParseTuple(PySequence_Fast_GET_ITEM(entries, i), "isiK", &number, &name, &nargs,
                             &direct))
            call = call_named(name, 0);
        if (call >= 0 && (number < 1 || number > MAX_SUBCALL || nargs < 1 || nargs > 6)) {
            PyErr_Format(PyExc_ValueError, "no subcall %d of %d words", number, nargs);
            call = -1;
        }
        if (call < 0) {
            Py_DECREF(entries);
            return -1;
        }
        self->subcalls[number] = (struct subcall){1, call, nargs, direct};
    }
    Py_DECREF(entries);
    if (flags_of(reads_socket, self->reads_socket) < 0 || flags_of(needs_alone, self->needs_alone) < 0)
        return -1;
    if (self->datagram == NULL && (self->datagram = PyMem_RawMalloc(MAX_DATAGRAM)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_XSETREF(self->threads, Py_NewRef(threads));
    Py_XSETREF(self->alone, Py_NewRef(single));
    return 0;
}

static void server_dealloc(Server *self)
{
    Py_XDECREF(self->threads);
    Py_XDECREF(self->alone);
    PyMem_RawFree(self->datagram);
    PyMem_RawFree(self->rewrites);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef server_methods[] = {
    {"serve", (PyCFunction)server_serve, METH_O,
     "serve(drain) -> the events Python must handle, after serving what it can."},
    {"decisions", (PyCFunction)server_decisions, METH_NOARGS,
     "decisions() -> {(call, action): count} of the calls served here."},
    {"returned", (PyCFunction)server_returned, METH_O,
     "returned(tid) -> whether this syscall-exit stop ended a socketcall run here as its "
     "direct syscall (its registers are restored, the thread runs on)."},
    {"forget", (PyCFunction)server_forget, METH_O, "forget(tid): the thread is gone."},
    {NULL},
};

static PyMemberDef server_members[] = {
    {"stops", T_ULONGLONG, offsetof(Server, stops), READONLY, "seccomp stops served here"},
    {NULL},
};

static PyTypeObject ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sandbox._fastpath.Server",
    .tp_doc = "Server(threads, served, subcalls, reads_socket, needs_alone, alone): waits for "
              "stops and serves the calls filed in threads[tid].verdicts, of the syscalls `served` "
              "lists as (arch, nr, call, word mask) and socketcall's `subcalls` as (number, call, "
              "words, direct nr); keys hold the socket's facts for the calls in `reads_socket`, "
              "and those in `needs_alone` are served only for the tids in the set `alone`.",
    .tp_basicsize = sizeof(Server),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)server_init,
    .tp_dealloc = (destructor)server_dealloc,
    .tp_methods = server_methods,
    .tp_members = server_members,
};

static PyMethodDef module_methods[] = {
    {"connect", fastpath_connect, METH_VARARGS,
     "connect(fd, type, address) -> (result, blocking): connect without ever blocking."},
    {"sendmsg", fastpath_sendmsg, METH_VARARGS,
     "sendmsg(fd, data, control, flags, name) -> (result, blocking): send without ever blocking; "
     "data is bytes, or a length of unreadable data."},
    {"syscall_info", fastpath_syscall_info, METH_O,
     "syscall_info(tid) -> (op, arch, nr, args, instruction_pointer): PTRACE_GET_SYSCALL_INFO."},
    {"send_timeout_ns", fastpath_send_timeout_ns, METH_O,
     "send_timeout_ns(fd) -> SO_SNDTIMEO in ns (0: none), as C serving a call reads it."},
    {"key", fastpath_key, METH_VARARGS,
     "key(call, family, type, protocol, address) -> the name a verdict is filed under."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sandbox._fastpath", NULL, -1, module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&ServerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Server", (PyObject *)&ServerType) < 0 ||
        PyModule_AddIntConstant(m, "NO_FACT", NO_FACT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
