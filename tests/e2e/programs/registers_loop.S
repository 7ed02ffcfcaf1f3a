// The loop of the registers program, in assembly so that no compiled code
// ever touches the registers it watches: between loading the patterns and
// the end of the loop only this code and the kernel run (a signal handler's
// changes are undone by sigreturn).
//
// void RegistersLoop(struct RegisterState* state);  (see registers_layout.h)
//
// Loads the patterns into vector registers (xmm8..15, ymm8..15 or zmm8..31
// plus k1..k7, by REG_LEVEL), rbx r8 r9 r10 r12..r15, two x87 stack slots,
// MXCSR and the x87 control word; writes "ready\n" to the report; then, every
// iteration, compares them all with the patterns (recording the first
// mismatch), stops when *REG_STOP is set, else sleeps with nanosleep. On the
// way out it stores what the registers held and restores the caller's state.
#include "tests/e2e/programs/registers_layout.h"

#define SYS_write 1
#define SYS_nanosleep 35

	.intel_syntax noprefix
	.text
	.globl RegistersLoop
	.type RegistersLoop, @function
RegistersLoop:
	push rbp
	push rbx
	push r12
	push r13
	push r14
	push r15
	mov rbp, rdi
	stmxcsr [rbp + REG_SAVED_MXCSR]
	fnstcw [rbp + REG_SAVED_FCW]
	ldmxcsr [rbp + REG_MXCSR]
	fldcw [rbp + REG_FCW]
	fld tbyte ptr [rbp + REG_X87]
	fld tbyte ptr [rbp + REG_X87 + 16]
	mov rbx, [rbp + REG_GPR]
	mov r8, [rbp + REG_GPR + 8]
	mov r9, [rbp + REG_GPR + 16]
	mov r10, [rbp + REG_GPR + 24]
	mov r12, [rbp + REG_GPR + 32]
	mov r13, [rbp + REG_GPR + 40]
	mov r14, [rbp + REG_GPR + 48]
	mov r15, [rbp + REG_GPR + 56]
	mov eax, [rbp + REG_LEVEL]
	cmp eax, 2
	je .Lload_zmm
	cmp eax, 1
	je .Lload_ymm
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	movdqa xmm\i, [rbp + REG_PATTERNS + (\i - 8) * 64]
	.endr
	jmp .Lloaded
.Lload_ymm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	vmovdqa ymm\i, [rbp + REG_PATTERNS + (\i - 8) * 64]
	.endr
	jmp .Lloaded
.Lload_zmm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
	vmovdqa64 zmm\i, [rbp + REG_PATTERNS + (\i - 8) * 64]
	.endr
	.irp m, 1, 2, 3, 4, 5, 6, 7
	kmovq k\m, qword ptr [rbp + REG_KMASK + (\m - 1) * 8]
	.endr
.Lloaded:
	// "ready" only now: from here on a checkpoint sees the patterns.
	mov eax, SYS_write
	mov edi, [rbp + REG_REPORT_FD]
	lea rsi, [rbp + REG_READY_TEXT]
	mov edx, 6
	syscall
	mov [rbp + REG_READY_RESULT], rax

.Lloop:
	// ecx holds the code of the check in progress, for .Lbad.
	mov ecx, REG_BAD_GPR + 0
	cmp rbx, [rbp + REG_GPR]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 1
	cmp r8, [rbp + REG_GPR + 8]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 2
	cmp r9, [rbp + REG_GPR + 16]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 3
	cmp r10, [rbp + REG_GPR + 24]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 4
	cmp r12, [rbp + REG_GPR + 32]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 5
	cmp r13, [rbp + REG_GPR + 40]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 6
	cmp r14, [rbp + REG_GPR + 48]
	jne .Lbad
	mov ecx, REG_BAD_GPR + 7
	cmp r15, [rbp + REG_GPR + 56]
	jne .Lbad

	mov ecx, REG_BAD_MXCSR
	stmxcsr [rbp + REG_SCRATCH]
	mov eax, [rbp + REG_SCRATCH]
	cmp eax, [rbp + REG_MXCSR]
	jne .Lbad
	mov ecx, REG_BAD_FCW
	fnstcw [rbp + REG_SCRATCH]
	movzx eax, word ptr [rbp + REG_SCRATCH]
	movzx edx, word ptr [rbp + REG_FCW]
	cmp eax, edx
	jne .Lbad
	// x87: push the expected value, compare it with the watched one, pop.
	mov ecx, REG_BAD_ST0
	fld tbyte ptr [rbp + REG_X87 + 16]
	fcomip st, st(1)
	jne .Lbad
	jp .Lbad
	mov ecx, REG_BAD_ST1
	fld tbyte ptr [rbp + REG_X87]
	fcomip st, st(2)
	jne .Lbad
	jp .Lbad

	mov eax, [rbp + REG_LEVEL]
	cmp eax, 2
	je .Lcheck_zmm
	cmp eax, 1
	je .Lcheck_ymm
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	mov ecx, \i - 7
	movdqa xmm0, xmm\i
	pcmpeqb xmm0, [rbp + REG_PATTERNS + (\i - 8) * 64]
	pmovmskb eax, xmm0
	cmp eax, 0xffff
	jne .Lbad
	.endr
	jmp .Lchecked
.Lcheck_ymm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	mov ecx, \i - 7
	vpcmpeqb ymm0, ymm\i, [rbp + REG_PATTERNS + (\i - 8) * 64]
	vpmovmskb eax, ymm0
	cmp eax, -1
	jne .Lbad
	.endr
	jmp .Lchecked
.Lcheck_zmm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
	mov ecx, \i - 7
	vpcmpeqq k0, zmm\i, [rbp + REG_PATTERNS + (\i - 8) * 64]
	kmovw eax, k0
	cmp eax, 0xff
	jne .Lbad
	.endr
	.irp m, 1, 2, 3, 4, 5, 6, 7
	mov ecx, REG_BAD_KMASK + \m
	kmovq rax, k\m
	cmp rax, [rbp + REG_KMASK + (\m - 1) * 8]
	jne .Lbad
	.endr

.Lchecked:
	mov rax, [rbp + REG_STOP]
	mov eax, dword ptr [rax]
	test eax, eax
	jnz .Ldone
	mov eax, SYS_nanosleep
	lea rdi, [rbp + REG_TIMESPEC]
	xor esi, esi
	syscall
	inc qword ptr [rbp + REG_ITERATIONS]
	jmp .Lloop

.Lbad:
	cmp dword ptr [rbp + REG_FIRST_BAD], 0
	jne .Lchecked
	mov [rbp + REG_FIRST_BAD], ecx
	mov rax, [rbp + REG_ITERATIONS]
	mov [rbp + REG_FIRST_BAD_ITER], rax
	jmp .Lchecked

.Ldone:
	mov [rbp + REG_FINAL_GPR], rbx
	mov [rbp + REG_FINAL_GPR + 8], r8
	mov [rbp + REG_FINAL_GPR + 16], r9
	mov [rbp + REG_FINAL_GPR + 24], r10
	mov [rbp + REG_FINAL_GPR + 32], r12
	mov [rbp + REG_FINAL_GPR + 40], r13
	mov [rbp + REG_FINAL_GPR + 48], r14
	mov [rbp + REG_FINAL_GPR + 56], r15
	stmxcsr [rbp + REG_FINAL_MXCSR]
	fnstcw [rbp + REG_FINAL_FCW]
	fstp tbyte ptr [rbp + REG_FINAL_X87 + 16]
	fstp tbyte ptr [rbp + REG_FINAL_X87]
	mov eax, [rbp + REG_LEVEL]
	cmp eax, 2
	je .Lstore_zmm
	cmp eax, 1
	je .Lstore_ymm
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	movdqu [rbp + REG_FINAL + (\i - 8) * 64], xmm\i
	.endr
	jmp .Lreturn
.Lstore_ymm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15
	vmovdqu [rbp + REG_FINAL + (\i - 8) * 64], ymm\i
	.endr
	vzeroupper
	jmp .Lreturn
.Lstore_zmm:
	.irp i, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
	vmovdqu64 [rbp + REG_FINAL + (\i - 8) * 64], zmm\i
	.endr
	.irp m, 1, 2, 3, 4, 5, 6, 7
	kmovq qword ptr [rbp + REG_FINAL_KMASK + (\m - 1) * 8], k\m
	.endr
	vzeroupper
.Lreturn:
	ldmxcsr [rbp + REG_SAVED_MXCSR]
	fldcw [rbp + REG_SAVED_FCW]
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbx
	pop rbp
	ret
	.size RegistersLoop, . - RegistersLoop

	.section .note.GNU-stack, "", @progbits
