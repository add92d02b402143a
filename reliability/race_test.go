//go:build race

package reliability

// raceBuild is true when the tests run with -race; the program is then
// built with -race too.
const raceBuild = true
