# SALTUN_CHECK_CFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
# Probe whether the C compiler accepts FLAG (with -Werror, so a warning
# about an unknown flag counts as a refusal).
AC_DEFUN([SALTUN_CHECK_CFLAG], [
  AS_VAR_PUSHDEF([cache], [saltun_cv_cflag_$1])
  AC_CACHE_CHECK([whether $CC accepts $1], [cache], [
    saltun_save_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -Werror $1"
    AC_COMPILE_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([cache], [yes])], [AS_VAR_SET([cache], [no])])
    CFLAGS=$saltun_save_CFLAGS])
  AS_VAR_IF([cache], [yes], [$2], [$3])
  AS_VAR_POPDEF([cache])
])

# SALTUN_CHECK_LDFLAG(FLAG, [ACTION-IF-OK], [ACTION-IF-NOT])
AC_DEFUN([SALTUN_CHECK_LDFLAG], [
  AS_VAR_PUSHDEF([cache], [saltun_cv_ldflag_$1])
  AC_CACHE_CHECK([whether the linker accepts $1], [cache], [
    saltun_save_LDFLAGS=$LDFLAGS
    saltun_save_CFLAGS=$CFLAGS
    LDFLAGS="$LDFLAGS $1"
    CFLAGS="$CFLAGS -fPIE"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([], [])],
      [AS_VAR_SET([cache], [yes])], [AS_VAR_SET([cache], [no])])
    LDFLAGS=$saltun_save_LDFLAGS
    CFLAGS=$saltun_save_CFLAGS])
  AS_VAR_IF([cache], [yes], [$2], [$3])
  AS_VAR_POPDEF([cache])
])
