#include <criterion/criterion.h>
Test(conf, placeholder) { cr_assert(1); }
