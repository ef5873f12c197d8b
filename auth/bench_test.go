package auth

import (
	"context"
	"testing"
)

// BenchmarkParseToken: the base64 decode and split of every call.
func BenchmarkParseToken(b *testing.B) {
	token := b64("user_1:P@ssw0rd")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseToken(token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached: a check answered by the cache (no hashing).
func BenchmarkVerifyCached(b *testing.B) {
	v, _ := newTestVerifier(b, VerifierOptions{}, nil)
	c := Credential{User: "root", Password: "Milvus"}
	ctx := context.Background()
	if _, err := v.Verify(ctx, c, "p"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, c, "p"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold: one argon2id verification, what a cache miss costs.
func BenchmarkVerifyCold(b *testing.B) {
	v, _ := newTestVerifier(b, VerifierOptions{}, nil)
	c := Credential{User: "root", Password: "Milvus"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		v.Purge()
		if _, err := v.Verify(ctx, c, "p"); err != nil {
			b.Fatal(err)
		}
	}
}
