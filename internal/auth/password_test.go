package auth_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/tandem-chat/tandem/internal/auth"
)

// cheapHash is an argon2id hash of password in the format HashPassword
// writes, at minimal cost.
func cheapHash(password string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(password), salt, 1, 8, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=8,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func TestPassword(t *testing.T) {
	hash, err := auth.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("RoundTrip", func(t *testing.T) {
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=65536,t=3,p=2$") {
			t.Fatalf("hash %q is not argon2id in the PHC format", hash)
		}
		if !auth.CheckPassword(hash, "correct horse battery") {
			t.Fatal("the right password does not match its hash")
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		if auth.CheckPassword(hash, "correct horse batterY") {
			t.Fatal("another password matches the hash")
		}
		// Near misses, against a hash at minimal cost (each check at the
		// real cost takes seconds under the race detector).
		cheap := cheapHash("correct horse battery")
		if !auth.CheckPassword(cheap, "correct horse battery") {
			t.Fatal("the right password does not match its cheap hash")
		}
		for _, pw := range []string{"correct horse battery ", "Correct horse battery", "", "correct horse batter"} {
			if auth.CheckPassword(cheap, pw) {
				t.Fatalf("%q matches the hash of another password", pw)
			}
		}
	})

	t.Run("Salted", func(t *testing.T) {
		again, err := auth.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if again == hash || strings.Split(again, "$")[4] == strings.Split(hash, "$")[4] {
			t.Fatal("two hashes of one password share a salt")
		}
	})

	t.Run("MalformedHashes", func(t *testing.T) {
		const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
		for _, tc := range []struct{ name, hash string }{
			{"Empty", ""},
			{"Plain", "correct horse battery"},
			{"TooFewParts", "$argon2id$v=19$m=8,t=1,p=1$" + salt},
			{"TooManyParts", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$" + key + "$x"},
			{"OtherAlgorithm", "$argon2i$v=19$m=8,t=1,p=1$" + salt + "$" + key},
			{"Bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
			{"BadParams", "$argon2id$v=19$memory$" + salt + "$" + key},
			{"NegativeParams", "$argon2id$v=19$m=-8,t=1,p=1$" + salt + "$" + key},
			{"ZeroTime", "$argon2id$v=19$m=8,t=0,p=1$" + salt + "$" + key},
			{"ZeroThreads", "$argon2id$v=19$m=8,t=1,p=0$" + salt + "$" + key},
			{"ThreadsOverflow", "$argon2id$v=19$m=8,t=1,p=300$" + salt + "$" + key},
			{"HugeMemory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
			{"HugeTime", "$argon2id$v=19$m=8,t=4294967295,p=1$" + salt + "$" + key},
			{"BadSalt", "$argon2id$v=19$m=8,t=1,p=1$!!!$" + key},
			{"BadKey", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$!!!"},
			{"EmptyKey", "$argon2id$v=19$m=8,t=1,p=1$" + salt + "$"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("CheckPassword panicked: %v", r)
					}
				}()
				if auth.CheckPassword(tc.hash, "correct horse battery") {
					t.Fatal("a malformed hash matched")
				}
			})
		}
	})
}
