"""A seccomp filter for bubblewrap sessions: the kernel's riskiest calls refused.

Namespaces hide the host, but every system call still reaches the host's kernel, so
the calls behind most kernel exploits, and that a notebook never needs, answer
``EPERM`` (io_uring, eBPF, userfaultfd, keyrings, perf events, ptrace, mounts and
namespaces, module and kexec loading…). ``clone3`` answers ``ENOSYS`` (its flags sit
in memory a filter cannot read; the C library then falls back to ``clone``, whose
namespace flags are refused), and ``ioctl(TIOCSTI)`` is refused. Calls of another
architecture's ABI (i386 on x86-64) kill the process. gVisor needs none of this:
its Sentry, not the host kernel, serves the calls.

The program is built with libseccomp (Debian ``libseccomp2``, already a dependency
of bubblewrap) through ctypes, once per process, and handed to ``bwrap --seccomp``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import logging
import os

logger = logging.getLogger(__name__)

_ALLOW = 0x7FFF0000
_CMP_MASKED_EQ = 7
CLONE_NAMESPACES = 0x7E020000
"""CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET."""
TIOCSTI = 0x5412

DENIED = (
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "bpf", "userfaultfd", "perf_event_open",
    "keyctl", "add_key", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr",
    "unshare", "setns",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "acct", "swapon", "swapoff", "reboot", "syslog", "quotactl",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "uselib", "vhangup", "settimeofday", "clock_settime", "adjtimex",
)  # fmt: skip


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


@functools.cache
def filter_program() -> bytes | None:
    """The BPF program, or None (logged) where libseccomp cannot be loaded."""
    name = ctypes.util.find_library("seccomp")
    if name is None:
        logger.warning("libseccomp not found: bubblewrap sessions run without seccomp")
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_ALLOW)
    if not context:
        raise OSError("seccomp_init failed")
    try:

        def rule(syscall: str, action: int, *conditions: tuple[int, int, int]) -> None:
            number = lib.seccomp_syscall_resolve_name(syscall.encode())
            if number < 0:
                return  # not a call of this architecture
            array = (_ArgCmp * max(1, len(conditions)))(
                *(_ArgCmp(arg, _CMP_MASKED_EQ, mask, value) for arg, mask, value in conditions)
            )
            status = lib.seccomp_rule_add_array(context, action, number, len(conditions), array)
            if status < 0:
                raise OSError(-status, f"seccomp rule for {syscall}")

        for syscall in DENIED:
            rule(syscall, _errno_action(errno.EPERM))
        rule("clone3", _errno_action(errno.ENOSYS))
        for flag in range(32):
            if CLONE_NAMESPACES & (1 << flag):
                rule("clone", _errno_action(errno.EPERM), (0, 1 << flag, 1 << flag))
        rule("ioctl", _errno_action(errno.EPERM), (1, 0xFFFFFFFF, TIOCSTI))
        fd = os.memfd_create("threadline-seccomp")
        try:
            status = lib.seccomp_export_bpf(context, fd)
            if status < 0:
                raise OSError(-status, "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(context)


def program_fd() -> int | None:
    """A fresh descriptor holding the program, positioned at its start, for bwrap."""
    program = filter_program()
    if program is None:
        return None
    fd = os.memfd_create("threadline-seccomp")
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
