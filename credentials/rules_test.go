package credentials

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateUsername(t *testing.T) {
	for _, name := range []string{"a", "root", "Alice_01", "z" + strings.Repeat("9", 31)} {
		if err := ValidateUsername(name); err != nil {
			t.Errorf("ValidateUsername(%q) = %v, want nil", name, err)
		}
	}
	cases := []struct{ name, want string }{
		{"", "username must be not empty: invalid parameter"},
		{strings.Repeat("a", 33), "invalid username " + strings.Repeat("a", 33) +
			" with length 33, the length of username must be less than 32: invalid parameter"},
		{"1abc", "invalid user name 1abc, the first character must be a letter, but got 1: invalid parameter"},
		{"_abc", "invalid user name _abc, the first character must be a letter, but got _: invalid parameter"},
		{"ab-c", "invalid user name ab-c, username must contain only numbers, letters and underscores, but got -: invalid parameter"},
		{" root", "invalid user name  root, the first character must be a letter, but got  : invalid parameter"},
		{"rööt", "invalid user name rööt, username must contain only numbers, letters and underscores, but got ö: invalid parameter"},
	}
	for _, c := range cases {
		err := ValidateUsername(c.name)
		var re *RuleError
		if !errors.As(err, &re) {
			t.Fatalf("ValidateUsername(%q) = %v, want *RuleError", c.name, err)
		}
		if re.Error() != c.want || re.Code() != 1100 {
			t.Errorf("ValidateUsername(%q) = %q code %d, want %q code 1100", c.name, re.Error(), re.Code(), c.want)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, n := range []int{6, 72, 256} {
		if err := ValidatePassword(strings.Repeat("p", n)); err != nil {
			t.Errorf("length %d: %v", n, err)
		}
	}
	for n, want := range map[int]string{
		0:   "invalid password length: invalid parameter[0 out of range 6 <= value <= 256]",
		5:   "invalid password length: invalid parameter[5 out of range 6 <= value <= 256]",
		257: "invalid password length: invalid parameter[257 out of range 6 <= value <= 256]",
	} {
		err := ValidatePassword(strings.Repeat("p", n))
		var re *RuleError
		if !errors.As(err, &re) || re.Reason != want || re.Code() != CodeParameterInvalid {
			t.Errorf("length %d: got %v, want %q", n, err, want)
		}
	}
}

func TestIsBuiltinRole(t *testing.T) {
	if !IsBuiltinRole(RoleAdmin) || !IsBuiltinRole(RolePublic) || IsBuiltinRole("Admin") || IsBuiltinRole("") {
		t.Fatal("IsBuiltinRole: want exactly admin and public")
	}
}
