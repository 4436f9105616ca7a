package clients

import "testing"

func TestMain(m *testing.M) { MainInNetns(m) }
