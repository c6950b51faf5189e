/* Entry point: the host starts the vCPU here in 64-bit mode with
 * RDI = parameter page, RSP = stack top, RFLAGS = 2, interrupts off. */
	.section .text.entry, "ax"
	.globl _start
_start:
	cld
	call guest_main
1:	hlt
	jmp 1b
