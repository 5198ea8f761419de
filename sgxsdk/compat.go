package sgxsdk

import (
	"encoding/binary"
	"slices"
)

// appendCompatible writes, after the primary metadata in block, the copies
// that older loaders read (generate_compatible_metadata): version 2.1 (SDK
// 2.0 loaders), an exact copy; and version 1.4 (SDK 1.9 loaders), whose
// layout table folds all non-utility threads into one thread group and
// drops the dynamic (EDMM) entries. tcsNum is the config's TCSNum.
func appendCompatible(block []byte, primarySize int, tcsNum uint64) error {
	le := binary.LittleEndian
	meta := slices.Clone(block[:primarySize])
	le.PutUint64(meta[8:], Version2_1)
	end := primarySize
	put := func(m []byte) error {
		if end+len(m) > len(block) {
			return metaErr("compatible metadata does not fit in the %#x-byte block", len(block))
		}
		copy(block[end:], m)
		end += len(m)
		return nil
	}
	if err := put(meta); err != nil {
		return err
	}

	le.PutUint64(meta[8:], Version1_4)
	loff := int(le.Uint32(meta[1880:]))
	lsize := int(le.Uint32(meta[1884:]))
	n := lsize / layoutSize
	at := func(i int) []byte { return meta[loff+i*layoutSize : loff+(i+1)*layoutSize] }
	id := func(i int) uint16 { return le.Uint16(at(i)) }
	// The utility thread runs from the first GUARD entry to the first TD
	// entry, as the SDK locates them.
	utStart, utEnd := -1, -1
	minR, initR, maxR := -1, -1, -1
	for i := range n {
		switch id(i) {
		case LayoutGuard:
			if utStart < 0 {
				utStart = i
			}
		case LayoutTD:
			if utEnd < 0 {
				utEnd = i
			}
		case LayoutRsrvMin:
			minR = i
		case LayoutRsrvInit:
			initR = i
		case LayoutRsrvMax:
			maxR = i
		}
	}
	if utStart < 0 || utEnd < 0 || utEnd <= utStart {
		return metaErr("layout table has no utility thread (guard ... TD)")
	}
	clearPostAdd := func(i int) {
		a := le.Uint16(at(i)[2:])
		le.PutUint16(at(i)[2:], a&^AttrPostAdd)
	}
	dropFromMeasure := func(i int) {
		le.PutUint64(at(i)[24:], siNone)
		clearPostAdd(i)
	}
	// metadata_cleanup: within the (possibly shortened) table, the first
	// HEAP_MAX leaves the measurement, and HEAP_INIT and the utility
	// thread's STACK_MAX lose POST_ADD.
	cleanup := func(entries int) {
		var heapMax, heapInit, stackMax = -1, -1, -1
		for i := range entries {
			switch {
			case heapMax < 0 && id(i) == LayoutHeapMax:
				heapMax = i
			case heapInit < 0 && id(i) == LayoutHeapInit:
				heapInit = i
			case stackMax < 0 && id(i) == LayoutStackMax:
				stackMax = i
			}
		}
		if heapMax >= 0 {
			dropFromMeasure(heapMax)
		}
		if heapInit >= 0 {
			clearPostAdd(heapInit)
		}
		if stackMax >= 0 {
			clearPostAdd(stackMax)
		}
	}
	after := utEnd + 1
	switch {
	case after == n:
		cleanup(n)
		return put(meta)
	case after == minR:
		cleanup(n)
		if initR >= 0 {
			clearPostAdd(initR)
		}
		if maxR >= 0 {
			dropFromMeasure(maxR)
		}
		return put(meta)
	}
	// Fold every thread after the utility thread into one group repeating
	// the utility thread's entries TCSNum-1 times.
	count := after - utStart
	var step uint64
	for i := utStart; i < after; i++ {
		step += uint64(le.Uint32(at(i)[4:])) * pageSize
	}
	var rsrv [][]byte
	if minR >= 0 {
		if initR >= 0 {
			clearPostAdd(initR)
		}
		if maxR >= 0 {
			dropFromMeasure(maxR)
		}
		for _, i := range []int{minR, initR, maxR} {
			if i >= 0 {
				rsrv = append(rsrv, slices.Clone(at(i)))
			}
		}
	}
	g := at(after)
	clear(g)
	le.PutUint16(g[0:], LayoutThreadGroup)
	le.PutUint16(g[2:], uint16(count))
	le.PutUint32(g[4:], uint32(tcsNum-1))
	le.PutUint64(g[8:], step)
	entries := after + 1
	cleanup(entries)
	for _, r := range rsrv {
		copy(at(entries), r)
		entries++
	}
	newSize := loff + entries*layoutSize
	le.PutUint32(meta[1884:], uint32(entries*layoutSize))
	le.PutUint32(meta[16:], uint32(newSize))
	return put(meta[:newSize])
}
