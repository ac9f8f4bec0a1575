package sign_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/federa-dev/federa/attest/sign"
)

// A release: sign the model and its provenance, then verify both the way
// `federa model verify` does, with nothing but signing.pub.
func Example() {
	dir, err := os.MkdirTemp("", "federa-sign-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	signer, err := sign.LoadOrCreate(dir) // writes signing.key and signing.pub
	if err != nil {
		log.Fatal(err)
	}
	model := []byte("safetensors bytes")
	modelBundle, err := sign.SignBlob(signer, model)
	if err != nil {
		log.Fatal(err)
	}

	sum := sha256.Sum256(model)
	st, err := sign.Statement("model.safetensors", hex.EncodeToString(sum[:]), sign.Provenance{
		JobSpecDigest: "sha256:0a1b",
		Sites:         []string{"spiffe://example.org/site/eu/paris", "spiffe://example.org/site/us/boston"},
		Rounds:        20,
		EpsilonSpent:  map[string]float64{"eu/paris": 0.8, "us/boston": 1.2},
	})
	if err != nil {
		log.Fatal(err)
	}
	provBundle, err := sign.SignProvenance(signer, st)
	if err != nil {
		log.Fatal(err)
	}

	pub, err := os.ReadFile(dir + "/signing.pub")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("model:", sign.VerifyBlob(pub, modelBundle, model))
	p, err := sign.VerifyProvenance(pub, provBundle, model)
	fmt.Println("provenance:", err, p.Rounds, "rounds")

	tampered := append([]byte("X"), model[1:]...)
	err = sign.VerifyBlob(pub, modelBundle, tampered)
	fmt.Println("tampered model rejected:", errors.Is(err, sign.ErrDigestMismatch))
	// Output:
	// model: <nil>
	// provenance: <nil> 20 rounds
	// tampered model rejected: true
}
