package gen

import (
	"cmp"
	"maps"
	"slices"
)

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// sortedValues returns m's values in the order of their keys.
func sortedValues[K cmp.Ordered, V any](m map[K]V) []V {
	var vs []V
	for _, k := range sortedKeys(m) {
		vs = append(vs, m[k])
	}
	return vs
}
