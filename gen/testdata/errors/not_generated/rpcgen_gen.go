// Package p has a hand-written file with the output's name.
package p
