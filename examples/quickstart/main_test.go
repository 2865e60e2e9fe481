package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstartFinishesTheJob runs the example end to end: every worker
// registers, every job's result reaches the driver, the total checks out.
func TestQuickstartFinishesTheJob(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
