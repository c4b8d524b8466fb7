#include <criterion/criterion.h>
Test(replay, placeholder) { cr_assert(1); }
