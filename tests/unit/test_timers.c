#include <criterion/criterion.h>
Test(timers, placeholder) { cr_assert(1); }
