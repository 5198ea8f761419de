#include "textflag.h"

// func enclu(leaf uint64, rbx, rcx unsafe.Pointer) uint64
TEXT ·enclu(SB), NOSPLIT, $0-32
	MOVQ leaf+0(FP), AX
	MOVQ rbx+8(FP), BX
	MOVQ rcx+16(FP), CX
	BYTE $0x0F; BYTE $0x01; BYTE $0xD7 // ENCLU
	MOVQ AX, ret+24(FP)
	RET
