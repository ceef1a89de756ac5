#ifndef FLOTILLA_CLIBGIT2_SHIM_H
#define FLOTILLA_CLIBGIT2_SHIM_H

#include <git2.h>

// Swift cannot call C variadic functions; these wrap the git_libgit2_opts calls Flotilla makes.

/// The controller's cache belongs to whoever runs it; libgit2's owner check would refuse a
/// cache created by another user with a misleading safe.directory message.
static inline int flotilla_git_set_owner_validation(int enabled) {
    return git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, enabled);
}

#endif
