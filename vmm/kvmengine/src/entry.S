/* Entry point: the host starts the vCPU here in 64-bit ring 3 with
 * RDI = parameter page, RSP = stack top, RFLAGS = IOPL 3 | IF (no interrupt
 * is ever injected). */
	.section .text.entry, "ax"
	.globl _start
_start:
	cld
	call guest_main
1:	hlt
	jmp 1b
