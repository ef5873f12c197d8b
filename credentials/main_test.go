package credentials

import (
	"fmt"
	"os"
	"testing"
)

// Some tests re-execute the test binary; this variable selects the child's
// role and the path it works on.
const (
	childRoleEnv = "CREDENTIALS_TEST_CHILD"
	childPathEnv = "CREDENTIALS_TEST_PATH"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childRoleEnv) {
	case "writer":
		crashWriterChild(os.Getenv(childPathEnv)) // runs until killed
	case "readonly":
		if err := readOnlyScenario(os.Getenv(childPathEnv)); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
