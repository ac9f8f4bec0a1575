//go:build !linux

package models

const hugePagesOn = false

func adviseHuge([]float32) {}
