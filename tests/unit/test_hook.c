#include <criterion/criterion.h>
Test(hook, placeholder) { cr_assert(1); }
