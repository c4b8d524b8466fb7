#include <criterion/criterion.h>
Test(key, placeholder) { cr_assert(1); }
