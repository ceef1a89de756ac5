#ifndef FLOTILLA_CLIBGIT2_SHIM_H
#define FLOTILLA_CLIBGIT2_SHIM_H

#include <git2.h>
#include <spawn.h>

// glibc declares this only under _GNU_SOURCE; FleetGit starts ssh-keygen, gpg and git in a
// given directory without changing the whole process's one.
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

// Swift cannot call C variadic functions; these wrap the git_libgit2_opts calls Flotilla makes.

/// The controller's cache belongs to whoever runs it; libgit2's owner check would refuse a
/// cache created by another user with a misleading safe.directory message.
static inline int flotilla_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

#endif
