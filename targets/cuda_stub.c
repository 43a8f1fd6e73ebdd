/* A build-time stand-in for the NVIDIA driver library, libcuda.so.1.
 *
 * TVM's CUDA module library (libtvm_runtime_cuda.so) links against libcuda.so.1. On a machine
 * without the NVIDIA driver it cannot be loaded, and TVM then keeps CUDA C source instead of
 * compiling cubins. edgecc builds this file with the host C compiler into its cache folder and
 * loads it in place of the driver while it compiles, the way the CUDA toolkit's lib64/stubs
 * libraries serve linkers. Nothing here can run a kernel: every entry point answers
 * CUDA_ERROR_STUB_LIBRARY (34), so a library loaded against the stub fails on its first call.
 *
 * The functions are the driver entry points libtvm_runtime_cuda.so imports (nm -D --undefined-only).
 */

typedef int CUresult;
#define CUDA_ERROR_STUB_LIBRARY 34

CUresult cuDeviceGetName(char *name, int len, int device) {
    if (name && len > 0) name[0] = '\0';
    return CUDA_ERROR_STUB_LIBRARY;
}

CUresult cuFuncSetAttribute(void *func, int attrib, int value) { return CUDA_ERROR_STUB_LIBRARY; }

CUresult cuGetErrorName(CUresult error, const char **text) {
    if (text) *text = "CUDA_ERROR_STUB_LIBRARY";
    return 0;
}

CUresult cuGetErrorString(CUresult error, const char **text) {
    if (text) *text = "libcuda.so.1 is edgecc's build-time stub, not the NVIDIA driver";
    return 0;
}

CUresult cuLaunchKernelEx(const void *config, void *func, void **params, void **extra) {
    return CUDA_ERROR_STUB_LIBRARY;
}

CUresult cuModuleGetFunction(void **func, void *module, const char *name) { return CUDA_ERROR_STUB_LIBRARY; }

CUresult cuModuleLoadData(void **module, const void *image) { return CUDA_ERROR_STUB_LIBRARY; }

CUresult cuModuleUnload(void *module) { return CUDA_ERROR_STUB_LIBRARY; }

CUresult cuTensorMapEncodeTiled(void *map, int dtype, unsigned rank, void *address, const void *dims,
                                const void *strides, const void *box, const void *element_strides,
                                int interleave, int swizzle, int promotion, int fill) {
    return CUDA_ERROR_STUB_LIBRARY;
}

/* Marks the stub so edgecc can tell it from the real driver once loaded. */
int edgecc_cuda_stub(void) { return 1; }
