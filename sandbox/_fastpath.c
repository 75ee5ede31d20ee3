/* The supervisor's hot path: waiting for stops, and serving in C the connects whose
 * verdict the Python supervisor has already reached for the same facts.
 *
 * A connect to an IP address is judged on what the thread's executable is, the
 * socket's family, type and protocol, and the sockaddr bytes: nothing else. Once the
 * supervisor has judged a call in Python, it files the verdict under those facts (the
 * executable picks the table, `key()` makes the entry's name). A later stop with the
 * same facts is served here with the same verdict, and the connect is performed the
 * same way as emulate.py performs it (on a pidfd_getfd copy, with the bytes read), so
 * what the tracee changes after the read changes nothing. Anything else goes back to
 * Python untouched: other stops and events, a fact that cannot be read, a verdict not
 * filed, a connect that must wait.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
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
#define CONNECT_X86_64 42
#define CONNECT_I386 362
#define MAX_ADDRLEN 128 /* sizeof(struct sockaddr_storage): longer is EINVAL */
#define BATCH 256       /* stops taken from waitpid before any is served */
#define SOCKET_FACTS 3  /* family, type, protocol: the key's first three ints */

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

/* The name a verdict is filed under: the socket's family, type and protocol as native
 * ints, then the sockaddr exactly as read. */
static PyObject *make_key(const int facts[SOCKET_FACTS], const char *address, Py_ssize_t length)
{
    PyObject *key = PyBytes_FromStringAndSize(NULL, sizeof(int) * SOCKET_FACTS + length);
    if (key == NULL)
        return NULL;
    char *bytes = PyBytes_AS_STRING(key);
    memcpy(bytes, facts, sizeof(int) * SOCKET_FACTS);
    memcpy(bytes + sizeof(int) * SOCKET_FACTS, address, length);
    return key;
}

static PyObject *fastpath_key(PyObject *module, PyObject *args)
{
    int facts[SOCKET_FACTS];
    Py_buffer address;
    if (!PyArg_ParseTuple(args, "iiiy*", &facts[0], &facts[1], &facts[2], &address))
        return NULL;
    PyObject *key = make_key(facts, address.buf, address.len);
    PyBuffer_Release(&address);
    return key;
}

typedef struct {
    PyObject_HEAD
    PyObject *known; /* the supervisor's dict: tid -> tracee.Known */
    unsigned long long stops, allowed, denied;
} Server;

enum served { NOT_SERVED, SERVED, MUST_WAIT, FAILED };

/* What Python needs to make the tracee wait for a connect under way. */
struct under_way {
    uint32_t arch;
    int fd;
    long result;
    long long send_timeout_ns; /* SO_SNDTIMEO, which bounds the wait; 0: none */
};

static int socket_facts(int fd, int facts[SOCKET_FACTS])
{
    static const int options[SOCKET_FACTS] = {SO_DOMAIN, SO_TYPE, SO_PROTOCOL};
    for (int i = 0; i < SOCKET_FACTS; i++) {
        socklen_t length = sizeof facts[i];
        if (getsockopt(fd, SOL_SOCKET, options[i], &facts[i], &length) < 0)
            return -1;
    }
    return 0;
}

/* The verdict filed for this thread and these facts: 0 allow, an errno deny; -1 none
 * (or a Python error, then set). */
static long filed_verdict(PyObject *verdicts, const int facts[SOCKET_FACTS],
                          const char *address, Py_ssize_t length)
{
    PyObject *key = make_key(facts, address, length);
    if (key == NULL)
        return -1;
    PyObject *verdict = PyDict_GetItemWithError(verdicts, key);
    Py_DECREF(key);
    return verdict == NULL ? -1 : PyLong_AsLong(verdict);
}

/* The syscall is skipped and returns `result`, then the thread runs on. A thread that
 * is gone (killed meanwhile) is no error: waitpid reports its end. */
static void finish(pid_t tid, long result)
{
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, orig_rax), -1L);
    ptrace(PTRACE_POKEUSER, tid, offsetof(struct user_regs_struct, rax), result);
    ptrace(PTRACE_CONT, tid, 0, 0);
}

/* What the supervisor keeps about this thread, if it lets C serve it: the thread's
 * pidfd and its table of filed verdicts (a borrowed dict), else 0. */
static int servable(Server *self, pid_t tid, int *pidfd, PyObject **verdicts)
{
    PyObject *key = PyLong_FromLong(tid);
    if (key == NULL)
        return -1;
    PyObject *known = PyDict_GetItemWithError(self->known, key);
    Py_DECREF(key);
    if (known == NULL)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *table = PyObject_GetAttrString(known, "verdicts");
    if (table == NULL)
        return -1;
    Py_DECREF(table); /* the Known keeps it alive for the stop */
    if (!PyDict_Check(table))
        return 0;
    PyObject *fd = PyObject_GetAttrString(known, "pidfd");
    if (fd == NULL)
        return -1;
    *pidfd = fd == Py_None ? -1 : (int)PyLong_AsLong(fd);
    Py_DECREF(fd);
    if (PyErr_Occurred())
        return -1;
    *verdicts = table;
    return *pidfd >= 0;
}

static long long send_timeout_ns(int fd)
{
    struct timeval timeout = {0, 0};
    socklen_t length = sizeof timeout;
    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, &length);
    return timeout.tv_sec * 1000000000LL + timeout.tv_usec * 1000LL;
}

static enum served serve_connect(Server *self, pid_t tid, struct under_way *wait)
{
    int pidfd;
    PyObject *verdicts;
    int ok = servable(self, tid, &pidfd, &verdicts);
    if (ok <= 0)
        return ok < 0 ? FAILED : NOT_SERVED;

    struct syscall_info info;
    if (ptrace(GET_SYSCALL_INFO, tid, sizeof info, &info) < 0 || info.op != SYSCALL_INFO_SECCOMP)
        return NOT_SERVED;
    uint64_t word_mask;
    if (info.arch == AUDIT_ARCH_X86_64 && info.nr == CONNECT_X86_64)
        word_mask = UINT64_MAX;
    else if (info.arch == AUDIT_ARCH_I386 && info.nr == CONNECT_I386)
        word_mask = UINT32_MAX;
    else
        return NOT_SERVED;
    int fd = (int)info.args[0];
    int length = (int)info.args[2];
    if (length < 0 || length > MAX_ADDRLEN)
        return NOT_SERVED;

    char address[MAX_ADDRLEN];
    struct iovec ours = {address, length};
    struct iovec theirs = {(void *)(uintptr_t)(info.args[1] & word_mask), length};
    if (length > 0 && process_vm_readv(tid, &ours, 1, &theirs, 1, 0) != length)
        return NOT_SERVED;

    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (copy < 0)
        return NOT_SERVED;
    enum served served = NOT_SERVED;
    int facts[SOCKET_FACTS];
    if (socket_facts(copy, facts) < 0 || (facts[0] != AF_INET && facts[0] != AF_INET6))
        goto done;
    long verdict = filed_verdict(verdicts, facts, address, length);
    if (verdict < 0) {
        served = PyErr_Occurred() ? FAILED : NOT_SERVED;
        goto done;
    }
    self->stops++;
    if (verdict > 0) {
        self->denied++;
        finish(tid, -verdict);
        served = SERVED;
        goto done;
    }
    self->allowed++;
    int blocking = 0;
    long result = connect_without_blocking(copy, facts[1], address, length, &blocking);
    if (blocking && (result == -EALREADY || result == -EAGAIN)) {
        *wait = (struct under_way){info.arch, fd, result, send_timeout_ns(copy)};
        served = MUST_WAIT;
        goto done;
    }
    finish(tid, result);
    served = SERVED;
done:
    close(copy);
    return served;
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
 * (pid, status) for Python to handle, or (pid, arch, fd, result, send_timeout_ns)
 * for a connect under way whose tracee must now wait (judged and counted). All
 * stops already waiting are taken before any is served: waitpid(-1) reports the
 * earliest tracee first, which would otherwise keep the others waiting. */
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
                served = serve_connect(self, pids[i], &wait);
            if (served == FAILED ||
                (served == NOT_SERVED &&
                 append(events, Py_BuildValue("(ii)", pids[i], statuses[i])) < 0) ||
                (served == MUST_WAIT &&
                 append(events, Py_BuildValue("(iIilL)", pids[i], wait.arch, wait.fd,
                                              wait.result, wait.send_timeout_ns)) < 0)) {
                Py_DECREF(events);
                return NULL;
            }
        }
    }
    return events;
}

static int server_init(Server *self, PyObject *args, PyObject *kwargs)
{
    PyObject *known;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &known))
        return -1;
    Py_XSETREF(self->known, Py_NewRef(known));
    return 0;
}

static void server_dealloc(Server *self)
{
    Py_XDECREF(self->known);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef server_methods[] = {
    {"serve", (PyCFunction)server_serve, METH_O,
     "serve(drain) -> the events Python must handle, after serving what it can."},
    {NULL},
};

static PyMemberDef server_members[] = {
    {"stops", T_ULONGLONG, offsetof(Server, stops), READONLY, "seccomp stops served here"},
    {"allowed", T_ULONGLONG, offsetof(Server, allowed), READONLY, "connects allowed here"},
    {"denied", T_ULONGLONG, offsetof(Server, denied), READONLY, "connects denied here"},
    {NULL},
};

static PyTypeObject ServerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sandbox._fastpath.Server",
    .tp_doc = "Server(known): waits for stops and serves the connects filed in known[tid].verdicts.",
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
    {"key", fastpath_key, METH_VARARGS,
     "key(family, type, protocol, address) -> the name a connect's verdict is filed under."},
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
    if (PyModule_AddObjectRef(m, "Server", (PyObject *)&ServerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
