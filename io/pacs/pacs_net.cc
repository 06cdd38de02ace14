// pacs_net.cc — DCMTK dcmnet/dcmtls behind pacs_net.h. Thin by design: it runs the DICOM
// operation it is asked for and returns counters and statuses; policy lives in pacs.c.
// No exception crosses back into C (catch (...) in every entry point).
#include "pacs_net.h"

#include "dcmfile.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcostrmf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/dcmtls/tlslayer.h>
#include <dcmtk/oflog/oflog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

// The storage SOP classes a retrieval accepts: the images the reader assembles.
static const char *storage_classes[] = {
    UID_CTImageStorage,
    UID_EnhancedCTImageStorage,
    UID_MRImageStorage,
    UID_EnhancedMRImageStorage,
    UID_ComputedRadiographyImageStorage,
    UID_DigitalXRayImageStorageForPresentation,
    UID_DigitalXRayImageStorageForProcessing,
    UID_PositronEmissionTomographyImageStorage,
    UID_SecondaryCaptureImageStorage,
};
static const int n_storage_classes = sizeof storage_classes / sizeof storage_classes[0];
// Query contexts: explicit then implicit little endian, as every SCP accepts.
static const char *query_syntaxes[] = {UID_LittleEndianExplicitTransferSyntax,
                                       UID_LittleEndianImplicitTransferSyntax};

static std::vector<const char *> reader_syntaxes() {
    std::vector<const char *> v;
    for (int i = 0; dcm_file_transfer_syntax_at(i); i++)
        v.push_back(dcm_file_transfer_syntax_at(i));
    return v;
}

// DCMTK's dcmnet debug output dumps whole datasets (names, IDs): its loggers stay off whatever
// the root logger's level; a peer closing a socket must not kill us with SIGPIPE.
static void quiet_dcmtk() {
    static std::once_flag once;
    std::call_once(once, [] {
        OFLog::getLogger("dcmtk.dcmnet").setLogLevel(OFLogger::OFF_LOG_LEVEL);
        OFLog::getLogger("dcmtk.dcmtls").setLogLevel(OFLogger::OFF_LOG_LEVEL);
        OFLog::getLogger("dcmtk.dcmdata").setLogLevel(OFLogger::OFF_LOG_LEVEL);
        std::signal(SIGPIPE, SIG_IGN);
        // Nagle's algorithm against the peer's delayed ACK holds each small DIMSE message (a
        // C-STORE response) for up to ~40 ms, i.e. per instance retrieved. DCMTK reads this
        // variable for every socket it opens; an operator's own value wins.
        setenv("TCP_NODELAY", "1", 0);
    });
}

struct pnet_assoc {
    T_ASC_Network *net = nullptr;
    T_ASC_Association *assoc = nullptr;
    DcmTLSTransportLayer *tls = nullptr;
    char where[300] = "";
    int dimse_timeout = 60;
    DIC_US next_id = 1;
};

const char *pnet_where(const pnet_assoc *a) { return a ? a->where : "?"; }

static const struct {
    unsigned status;
    const char *name;
} status_names[] = {
    {0x0000, "success"},
    {0xFE00, "cancel (the peer stopped listing or sending)"},
    {0xB000, "warning: some sub-operations failed"},
    {0xA700, "refused: out of resources"},
    {0xA701, "refused: out of resources (matches)"},
    {0xA702, "refused: out of resources (sub-operations)"},
    {0xA801, "refused: move destination unknown"},
    {0xA900, "identifier does not match the SOP class"},
    {0x0122, "refused: SOP class not supported"},
    {0x0124, "refused: not authorized"},
};

const char *pnet_status_name(unsigned status) {
    for (const auto &r : status_names)
        if (r.status == status) return r.name;
    if ((status & 0xF000) == 0xC000) return "failed: unable to process";
    if ((status & 0xF000) == 0xA000) return "refused";
    return "unexpected status";
}

// The reason of a failed condition, in words that hold no header value.
static std::string reason_of(OFCondition c, int timeout_s) {
    if (c == DUL_READTIMEOUT || c == DIMSE_NODATAAVAILABLE)
        return "no answer within " + std::to_string(timeout_s) + " s (timed out)";
    if (c == DUL_PEERABORTEDASSOCIATION) return "the peer aborted the association";
    if (c == DUL_PEERREQUESTEDRELEASE) return "the peer released the association";
    std::string t = c.text();
    for (char &ch : t)
        if (ch == '\n' || ch == '\r') ch = ' ';
    return t;
}

static vs_status peer_fail(vs_error *err, const char *where, const char *what, OFCondition c,
                           int timeout_s) {
    return VS_FAIL(err, VS_ERR_PEER, "%s: %s: %s", where, what, reason_of(c, timeout_s).c_str());
}

static const char *reject_reason(const T_ASC_RejectParameters &r) {
    switch (r.reason) {
    case ASC_REASON_SU_CALLINGAETITLENOTRECOGNIZED: return "calling AE title not recognized";
    case ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED: return "called AE title not recognized";
    case ASC_REASON_SU_APPCONTEXTNAMENOTSUPPORTED: return "application context not supported";
    case ASC_REASON_SP_PRES_TEMPORARYCONGESTION: return "temporary congestion";
    case ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED: return "local limit exceeded";
    default: return "no reason given";
    }
}

// A TLS layer for either side. The peer's certificate must chain to ca (requestor: always;
// acceptor: when ca is given).
static DcmTLSTransportLayer *tls_layer(T_ASC_NetworkRole role, const pnet_tls *t,
                                       std::string *why) {
    auto *l = new (std::nothrow) DcmTLSTransportLayer(role, NULL, OFTrue);
    if (!l) {
        *why = "out of memory";
        return nullptr;
    }
    OFCondition c = l->setTLSProfile(TSP_Profile_BCP195);
    if (c.good()) c = l->activateCipherSuites();
    if (c.good() && t->key) c = l->setPrivateKeyFile(t->key, DCF_Filetype_PEM);
    if (c.good() && t->cert) c = l->setCertificateFile(t->cert, DCF_Filetype_PEM);
    if (c.good() && t->key && t->cert && !l->checkPrivateKeyMatchesCertificate())
        c = EC_IllegalParameter;
    if (c.good() && t->ca) c = l->addTrustedCertificateFile(t->ca, DCF_Filetype_PEM);
    if (c.bad()) {
        *why = std::string("TLS set-up failed (certificate, key or CA file): ") + c.text();
        delete l;
        return nullptr;
    }
    l->setCertificateVerification(role == NET_REQUESTOR || t->ca ? DCV_requireCertificate
                                                                 : DCV_ignoreCertificate);
    return l;
}

static OFCondition add_contexts(T_ASC_Parameters *params, int services) {
    int id = 1; // odd, 1 to 255
    OFCondition c =
        ASC_addPresentationContext(params, id, UID_VerificationSOPClass, query_syntaxes, 2);
    id += 2;
    const char *qr[3] = {UID_FINDStudyRootQueryRetrieveInformationModel,
                         UID_GETStudyRootQueryRetrieveInformationModel,
                         UID_MOVEStudyRootQueryRetrieveInformationModel};
    for (int s = 0; s < 3 && c.good(); s++)
        if (services & (1 << s)) {
            c = ASC_addPresentationContext(params, (T_ASC_PresentationContextID)id, qr[s],
                                           query_syntaxes, 2);
            id += 2;
        }
    if (!(services & (PNET_GET | PNET_STORE))) return c;
    T_ASC_SC_ROLE role = services & PNET_GET ? ASC_SC_ROLE_SCP : ASC_SC_ROLE_DEFAULT;
    std::vector<const char *> ts = reader_syntaxes();
    for (int k = 0; k < n_storage_classes && c.good(); k++)
        for (size_t t = 0; t < ts.size() && c.good(); t++) {
            if (id > 255) return ASC_BADPRESENTATIONCONTEXTID; // the table outgrew one association
            c = ASC_addPresentationContext(params, (T_ASC_PresentationContextID)id,
                                           storage_classes[k], &ts[t], 1, role);
            id += 2;
        }
    return c;
}

void pnet_close(pnet_assoc *a) {
    if (!a) return;
    try {
        if (a->assoc) {
            if (ASC_releaseAssociation(a->assoc).bad()) ASC_abortAssociation(a->assoc);
            ASC_destroyAssociation(&a->assoc);
        }
        if (a->net) ASC_dropNetwork(&a->net);
    } catch (...) {
    }
    delete a->tls;
    delete a;
}

vs_status pnet_connect(const pnet_peer *p, int services, pnet_assoc **out, vs_error *err) {
    *out = nullptr;
    quiet_dcmtk();
    auto *a = new (std::nothrow) pnet_assoc;
    if (!a) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    snprintf(a->where, sizeof a->where, "%s:%d", p->host, p->port);
    a->dimse_timeout = p->dimse_timeout_s;
    vs_status st = VS_OK;
    try {
        dcmConnectionTimeout.set(p->connect_timeout_s);
        T_ASC_Parameters *params = nullptr;
        OFCondition c = ASC_initializeNetwork(NET_REQUESTOR, 0, p->acse_timeout_s, &a->net);
        if (c.bad()) {
            st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot set up the network: %s", a->where,
                         c.text());
            goto fail;
        }
        if (p->tls) {
            std::string why;
            if (!(a->tls = tls_layer(NET_REQUESTOR, p->tls, &why))) {
                st = VS_FAIL(err, VS_ERR_CONFIG, "%s: %s", a->where, why.c_str());
                goto fail;
            }
            if ((c = ASC_setTransportLayer(a->net, a->tls, 0)).bad()) {
                st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot use TLS: %s", a->where, c.text());
                goto fail;
            }
        }
        if ((c = ASC_createAssociationParameters(&params, ASC_DEFAULTMAXPDU)).bad()) {
            st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: %s", a->where, c.text());
            goto fail;
        }
        ASC_setAPTitles(params, p->calling_aet, p->called_aet, NULL);
        ASC_setPresentationAddresses(params, "localhost", a->where);
        if ((c = ASC_setTransportLayerType(params, p->tls != nullptr)).good())
            c = add_contexts(params, services);
        if (c.bad()) {
            ASC_destroyAssociationParameters(&params);
            st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot propose the association: %s", a->where,
                         c.text());
            goto fail;
        }
        // params now belongs to the association, even when the request fails
        c = ASC_requestAssociation(a->net, params, &a->assoc);
        if (c == DUL_ASSOCIATIONREJECTED) {
            T_ASC_RejectParameters rej;
            ASC_getRejectParameters(params, &rej);
            st = VS_FAIL(err, VS_ERR_PEER, "%s: association rejected: %s", a->where,
                         reject_reason(rej));
            goto fail;
        }
        if (c.bad()) {
            st = peer_fail(err, a->where, "cannot associate", c, p->acse_timeout_s);
            goto fail;
        }
        if (ASC_countAcceptedPresentationContexts(params) == 0) {
            st = VS_FAIL(err, VS_ERR_PEER, "%s: the peer accepted no presentation context",
                         a->where);
            goto fail;
        }
    } catch (...) {
        st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed while associating", a->where);
        goto fail;
    }
    *out = a;
    return VS_OK;
fail:
    try {
        if (a->assoc) {
            ASC_abortAssociation(a->assoc);
            ASC_destroyAssociation(&a->assoc);
        }
    } catch (...) {
    }
    pnet_close(a);
    return st;
}

static T_ASC_PresentationContextID context_for(pnet_assoc *a, const char *sop_class,
                                               const char *what, vs_error *err) {
    T_ASC_PresentationContextID id = ASC_findAcceptedPresentationContextID(a->assoc, sop_class);
    if (id == 0) VS_FAIL(err, VS_ERR_PEER, "%s: the peer does not offer %s", a->where, what);
    return id;
}

vs_status pnet_echo(pnet_assoc *a, vs_error *err) {
    try {
        if (!context_for(a, UID_VerificationSOPClass, "C-ECHO", err)) return err->code;
        DIC_US status = 0;
        DcmDataset *detail = nullptr;
        OFCondition c = DIMSE_echoUser(a->assoc, a->next_id++, DIMSE_NONBLOCKING, a->dimse_timeout,
                                       &status, &detail);
        delete detail;
        if (c.bad()) return peer_fail(err, a->where, "C-ECHO failed", c, a->dimse_timeout);
        if (status != STATUS_Success)
            return VS_FAIL(err, VS_ERR_PEER, "%s: C-ECHO refused (status 0x%04x, %s)", a->where,
                           status, pnet_status_name(status));
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed in C-ECHO", a->where);
    }
    return VS_OK;
}

/* ---- C-FIND ---------------------------------------------------------------------------- */

struct find_ctx {
    pnet_assoc *a;
    T_ASC_PresentationContextID pid;
    const pnet_key *keys;
    int n_keys;
    pnet_match_fn fn;
    void *user;
    bool cancelled = false;
    bool failed = false; // bad_alloc inside the callback
};

static std::string value_of(DcmItem *ds, const pnet_key &k) {
    OFString s;
    if (!ds || ds->findAndGetOFStringArray(DcmTagKey(k.group, k.element), s).bad()) return "";
    std::string v(s.c_str());
    while (!v.empty() && (v.back() == ' ' || v.back() == 0))
        v.pop_back();
    size_t b = 0;
    while (b < v.size() && v[b] == ' ')
        b++;
    return v.substr(b);
}

static void find_callback(void *data, T_DIMSE_C_FindRQ *req, int, T_DIMSE_C_FindRSP *,
                          DcmDataset *ids) {
    auto *f = static_cast<find_ctx *>(data);
    if (f->cancelled || f->failed) return;
    try {
        std::vector<std::string> vals;
        std::vector<const char *> ptrs;
        for (int i = 0; i < f->n_keys; i++)
            vals.push_back(value_of(ids, f->keys[i]));
        for (auto &v : vals)
            ptrs.push_back(v.c_str());
        if (f->fn(f->user, ptrs.data())) {
            f->cancelled = true;
            DIMSE_sendCancelRequest(f->a->assoc, f->pid, req->MessageID);
        }
    } catch (...) {
        f->failed = true;
    }
}

vs_status pnet_find(pnet_assoc *a, const char *level, const pnet_key *keys, int n_keys,
                    pnet_match_fn fn, void *ctx, pnet_find_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    try {
        find_ctx f{a, 0, keys, n_keys, fn, ctx};
        f.pid = context_for(a, UID_FINDStudyRootQueryRetrieveInformationModel, "Study Root C-FIND",
                            err);
        if (!f.pid) return err->code;
        DcmDataset ids;
        OFCondition c = ids.putAndInsertString(DCM_QueryRetrieveLevel, level);
        for (int i = 0; i < n_keys && c.good(); i++)
            c = ids.putAndInsertString(DcmTagKey(keys[i].group, keys[i].element),
                                       keys[i].value ? keys[i].value : "");
        if (c.bad())
            return VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot build a C-FIND query", a->where);
        T_DIMSE_C_FindRQ req;
        memset(&req, 0, sizeof req);
        req.MessageID = a->next_id++;
        OFStandard::strlcpy(req.AffectedSOPClassUID, UID_FINDStudyRootQueryRetrieveInformationModel,
                            sizeof req.AffectedSOPClassUID);
        req.DataSetType = DIMSE_DATASET_PRESENT;
        req.Priority = DIMSE_PRIORITY_LOW;
        T_DIMSE_C_FindRSP rsp;
        memset(&rsp, 0, sizeof rsp);
        DcmDataset *detail = nullptr;
        int count = 0;
        c = DIMSE_findUser(a->assoc, f.pid, &req, &ids, count, find_callback, &f, DIMSE_NONBLOCKING,
                           a->dimse_timeout, &rsp, &detail);
        delete detail;
        if (f.failed) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory listing C-FIND matches");
        if (c.bad()) return peer_fail(err, a->where, "C-FIND failed", c, a->dimse_timeout);
        res->status = rsp.DimseStatus;
        res->n_matches = count;
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed in C-FIND", a->where);
    }
    return VS_OK;
}

/* ---- C-STORE (inside a C-GET, or on the receiver) -------------------------------------- */

// Receive one instance's dataset into the sink, bytes as they come; then answer the C-STORE.
// Returns a bad condition only when the association itself failed.
static OFCondition store_one(T_ASC_Association *as, T_ASC_PresentationContextID pid,
                             T_DIMSE_C_StoreRQ *req, const pnet_sink *sink, int timeout,
                             int *received) {
    int token = -1;
    const char *path = sink->open(sink->ctx, req->AffectedSOPInstanceUID, &token);
    DIC_US status = STATUS_STORE_Refused_OutOfResources;
    OFCondition c = EC_Normal;
    if (!path) {
        DIC_UL bytes = 0, pdvs = 0;
        c = DIMSE_ignoreDataSet(as, DIMSE_NONBLOCKING, timeout, &bytes, &pdvs);
    } else {
        DcmOutputFileStream *fs = nullptr;
        OFCondition fc = DIMSE_createFilestream(path, req, as, pid, OFTrue, &fs);
        if (fc.good()) {
            c = DIMSE_receiveDataSetInFile(as, DIMSE_NONBLOCKING, timeout, &pid, fs, NULL, NULL);
            if (fs->status().bad()) fc = fs->status();
            delete fs;
        } else {
            DIC_UL bytes = 0, pdvs = 0;
            c = DIMSE_ignoreDataSet(as, DIMSE_NONBLOCKING, timeout, &bytes, &pdvs);
        }
        bool ok = fc.good() && c.good();
        sink->done(sink->ctx, token, ok);
        if (ok) {
            status = STATUS_Success;
            (*received)++;
        }
    }
    if (c.bad()) return c;
    T_DIMSE_C_StoreRSP rsp;
    memset(&rsp, 0, sizeof rsp);
    rsp.MessageIDBeingRespondedTo = req->MessageID;
    rsp.DimseStatus = status;
    rsp.DataSetType = DIMSE_DATASET_NULL;
    OFStandard::strlcpy(rsp.AffectedSOPClassUID, req->AffectedSOPClassUID,
                        sizeof rsp.AffectedSOPClassUID);
    OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req->AffectedSOPInstanceUID,
                        sizeof rsp.AffectedSOPInstanceUID);
    rsp.opts = O_STORE_AFFECTEDSOPCLASSUID | O_STORE_AFFECTEDSOPINSTANCEUID;
    return DIMSE_sendStoreResponse(as, pid, req, &rsp, NULL);
}

static vs_status series_ids(DcmDataset &ids, const char *study_uid, const char *series_uid,
                            const char *where, vs_error *err) {
    OFCondition c = ids.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
    if (c.good()) c = ids.putAndInsertString(DCM_StudyInstanceUID, study_uid);
    if (c.good()) c = ids.putAndInsertString(DCM_SeriesInstanceUID, series_uid);
    if (c.bad()) return VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot build a retrieve request", where);
    return VS_OK;
}

static void counters(pnet_retrieve_result *r, DIC_US status, DIC_US remaining, DIC_US completed,
                     DIC_US failed, DIC_US warning, unsigned opts, unsigned o_rem, unsigned o_comp,
                     unsigned o_fail, unsigned o_warn) {
    r->status = status;
    r->remaining = opts & o_rem ? remaining : -1;
    r->completed = opts & o_comp ? completed : -1;
    r->failed = opts & o_fail ? failed : -1;
    r->warning = opts & o_warn ? warning : -1;
}

vs_status pnet_get_series(pnet_assoc *a, const char *study_uid, const char *series_uid,
                          const pnet_sink *sink, pnet_retrieve_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    res->completed = res->failed = res->warning = res->remaining = -1;
    try {
        T_ASC_PresentationContextID pid =
            context_for(a, UID_GETStudyRootQueryRetrieveInformationModel, "Study Root C-GET", err);
        if (!pid) return err->code;
        DcmDataset ids;
        if (series_ids(ids, study_uid, series_uid, a->where, err) != VS_OK) return err->code;
        T_DIMSE_Message msg;
        memset(&msg, 0, sizeof msg);
        msg.CommandField = DIMSE_C_GET_RQ;
        T_DIMSE_C_GetRQ &rq = msg.msg.CGetRQ;
        rq.MessageID = a->next_id++;
        OFStandard::strlcpy(rq.AffectedSOPClassUID, UID_GETStudyRootQueryRetrieveInformationModel,
                            sizeof rq.AffectedSOPClassUID);
        rq.Priority = DIMSE_PRIORITY_LOW;
        rq.DataSetType = DIMSE_DATASET_PRESENT;
        OFCondition c =
            DIMSE_sendMessageUsingMemoryData(a->assoc, pid, &msg, NULL, &ids, NULL, NULL);
        if (c.bad()) return peer_fail(err, a->where, "cannot send C-GET", c, a->dimse_timeout);
        for (;;) {
            T_DIMSE_Message rsp;
            memset(&rsp, 0, sizeof rsp);
            T_ASC_PresentationContextID rpid = 0;
            DcmDataset *detail = nullptr;
            c = DIMSE_receiveCommand(a->assoc, DIMSE_NONBLOCKING, a->dimse_timeout, &rpid, &rsp,
                                     &detail);
            delete detail;
            if (c.bad()) return peer_fail(err, a->where, "C-GET failed", c, a->dimse_timeout);
            if (rsp.CommandField == DIMSE_C_STORE_RQ) {
                c = store_one(a->assoc, rpid, &rsp.msg.CStoreRQ, sink, a->dimse_timeout,
                              &res->received);
                if (c.bad())
                    return peer_fail(err, a->where, "C-GET failed while receiving", c,
                                     a->dimse_timeout);
                continue;
            }
            if (rsp.CommandField != DIMSE_C_GET_RSP)
                return VS_FAIL(err, VS_ERR_PEER, "%s: C-GET: unexpected DIMSE command 0x%04x",
                               a->where, (unsigned)rsp.CommandField);
            const T_DIMSE_C_GetRSP &g = rsp.msg.CGetRSP;
            if (g.DataSetType != DIMSE_DATASET_NULL) { // a failed-instances list: not needed
                DcmDataset *ds = nullptr;
                c = DIMSE_receiveDataSetInMemory(a->assoc, DIMSE_NONBLOCKING, a->dimse_timeout,
                                                 &rpid, &ds, NULL, NULL);
                delete ds;
                if (c.bad()) return peer_fail(err, a->where, "C-GET failed", c, a->dimse_timeout);
            }
            counters(res, g.DimseStatus, g.NumberOfRemainingSubOperations,
                     g.NumberOfCompletedSubOperations, g.NumberOfFailedSubOperations,
                     g.NumberOfWarningSubOperations, g.opts, O_GET_NUMBEROFREMAININGSUBOPERATIONS,
                     O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS, O_GET_NUMBEROFFAILEDSUBOPERATIONS,
                     O_GET_NUMBEROFWARNINGSUBOPERATIONS);
            if (!DICOM_PENDING_STATUS(g.DimseStatus)) break;
        }
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed in C-GET", a->where);
    }
    return VS_OK;
}

vs_status pnet_store_file(pnet_assoc *a, const char *path, unsigned *status, vs_error *err) {
    *status = 0x0122;
    try {
        DcmFileFormat ff;
        OFString sop_class, sop_instance;
        if (ff.loadFile(path).bad() ||
            ff.getDataset()->findAndGetOFString(DCM_SOPClassUID, sop_class).bad() ||
            ff.getDataset()->findAndGetOFString(DCM_SOPInstanceUID, sop_instance).bad())
            return VS_FAIL(err, VS_ERR_FORMAT,
                           "%s: not a DICOM file with SOP class and instance UIDs", path);
        DcmXfer xfer(ff.getDataset()->getOriginalXfer());
        T_ASC_PresentationContextID pid =
            ASC_findAcceptedPresentationContextID(a->assoc, sop_class.c_str(), xfer.getXferID());
        if (pid == 0) return VS_OK; /* no context for this class in this syntax: not sent */
        T_DIMSE_C_StoreRQ rq;
        memset(&rq, 0, sizeof rq);
        rq.MessageID = a->next_id++;
        OFStandard::strlcpy(rq.AffectedSOPClassUID, sop_class.c_str(),
                            sizeof rq.AffectedSOPClassUID);
        OFStandard::strlcpy(rq.AffectedSOPInstanceUID, sop_instance.c_str(),
                            sizeof rq.AffectedSOPInstanceUID);
        rq.DataSetType = DIMSE_DATASET_PRESENT;
        rq.Priority = DIMSE_PRIORITY_LOW;
        T_DIMSE_C_StoreRSP rsp;
        memset(&rsp, 0, sizeof rsp);
        DcmDataset *detail = nullptr;
        OFCondition c = DIMSE_storeUser(a->assoc, pid, &rq, NULL, ff.getDataset(), NULL, NULL,
                                        DIMSE_NONBLOCKING, a->dimse_timeout, &rsp, &detail);
        delete detail;
        if (c.bad()) return peer_fail(err, a->where, "C-STORE failed", c, a->dimse_timeout);
        *status = rsp.DimseStatus;
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed in C-STORE", a->where);
    }
    return VS_OK;
}

vs_status pnet_move_series(pnet_assoc *a, const char *study_uid, const char *series_uid,
                           const char *dest_aet, pnet_retrieve_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    res->completed = res->failed = res->warning = res->remaining = -1;
    try {
        T_ASC_PresentationContextID pid = context_for(
            a, UID_MOVEStudyRootQueryRetrieveInformationModel, "Study Root C-MOVE", err);
        if (!pid) return err->code;
        DcmDataset ids;
        if (series_ids(ids, study_uid, series_uid, a->where, err) != VS_OK) return err->code;
        T_DIMSE_C_MoveRQ rq;
        memset(&rq, 0, sizeof rq);
        rq.MessageID = a->next_id++;
        OFStandard::strlcpy(rq.AffectedSOPClassUID, UID_MOVEStudyRootQueryRetrieveInformationModel,
                            sizeof rq.AffectedSOPClassUID);
        rq.Priority = DIMSE_PRIORITY_LOW;
        rq.DataSetType = DIMSE_DATASET_PRESENT;
        OFStandard::strlcpy(rq.MoveDestination, dest_aet, sizeof rq.MoveDestination);
        T_DIMSE_C_MoveRSP rsp;
        memset(&rsp, 0, sizeof rsp);
        DcmDataset *detail = nullptr, *rsp_ids = nullptr;
        OFCondition c = DIMSE_moveUser(a->assoc, pid, &rq, &ids, NULL, NULL, DIMSE_NONBLOCKING,
                                       a->dimse_timeout, NULL, NULL, NULL, &rsp, &detail, &rsp_ids);
        delete detail;
        delete rsp_ids;
        if (c.bad()) return peer_fail(err, a->where, "C-MOVE failed", c, a->dimse_timeout);
        counters(res, rsp.DimseStatus, rsp.NumberOfRemainingSubOperations,
                 rsp.NumberOfCompletedSubOperations, rsp.NumberOfFailedSubOperations,
                 rsp.NumberOfWarningSubOperations, rsp.opts, O_MOVE_NUMBEROFREMAININGSUBOPERATIONS,
                 O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS, O_MOVE_NUMBEROFFAILEDSUBOPERATIONS,
                 O_MOVE_NUMBEROFWARNINGSUBOPERATIONS);
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK failed in C-MOVE", a->where);
    }
    return VS_OK;
}

/* ---- the C-STORE receiver (C-MOVE destination) ----------------------------------------- */

struct pnet_receiver {
    T_ASC_Network *net = nullptr;
    DcmTLSTransportLayer *tls = nullptr;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::atomic<int> count{0};
    std::string aet;
    pnet_sink sink{};
    int timeout = 60;
};

int pnet_receiver_count(pnet_receiver *r) { return r ? r->count.load() : 0; }

static bool accept_association(pnet_receiver *r, T_ASC_Association *as) {
    char calling[65] = "", called[65] = "";
    ASC_getAPTitles(as->params, calling, sizeof calling, called, sizeof called, NULL, 0);
    if (r->aet != called) {
        T_ASC_RejectParameters rej = {ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                                      ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED};
        ASC_rejectAssociation(as, &rej);
        return false;
    }
    std::vector<const char *> ts = reader_syntaxes();
    const char *echo[] = {UID_VerificationSOPClass};
    OFCondition c =
        ASC_acceptContextsWithPreferredTransferSyntaxes(as->params, echo, 1, query_syntaxes, 2);
    if (c.good())
        c = ASC_acceptContextsWithPreferredTransferSyntaxes(
            as->params, storage_classes, n_storage_classes, ts.data(), (int)ts.size());
    if (c.good()) c = ASC_acknowledgeAssociation(as);
    return c.good();
}

// Serve one association until the peer releases it, it fails, or we are stopped.
static void serve(pnet_receiver *r, T_ASC_Association *as) {
    int idle = 0;
    for (;;) {
        T_DIMSE_Message msg;
        memset(&msg, 0, sizeof msg);
        T_ASC_PresentationContextID pid = 0;
        OFCondition c = DIMSE_receiveCommand(as, DIMSE_NONBLOCKING, 1, &pid, &msg, NULL);
        if (c == DIMSE_NODATAAVAILABLE) {
            if (r->stop || ++idle > r->timeout) break;
            continue;
        }
        idle = 0;
        if (c == DUL_PEERREQUESTEDRELEASE) {
            ASC_acknowledgeRelease(as);
            return;
        }
        if (c.bad()) return; // aborted or broken: nothing to release
        if (msg.CommandField == DIMSE_C_ECHO_RQ) {
            c = DIMSE_sendEchoResponse(as, pid, &msg.msg.CEchoRQ, STATUS_Success, NULL);
        } else if (msg.CommandField == DIMSE_C_STORE_RQ) {
            int got = 0;
            c = store_one(as, pid, &msg.msg.CStoreRQ, &r->sink, r->timeout, &got);
            r->count += got;
        } else {
            break;
        }
        if (c.bad()) return;
    }
    ASC_abortAssociation(as);
}

static void receiver_loop(pnet_receiver *r) {
    while (!r->stop) {
        try {
            if (!ASC_associationWaiting(r->net, 1)) continue;
            T_ASC_Association *as = nullptr;
            OFCondition c = ASC_receiveAssociation(r->net, &as, ASC_DEFAULTMAXPDU, NULL, NULL,
                                                   r->tls != nullptr, DUL_NOBLOCK, r->timeout);
            if (c.good() && accept_association(r, as)) serve(r, as);
            if (as) {
                ASC_dropSCPAssociation(as);
                ASC_destroyAssociation(&as);
            }
        } catch (...) {
            // a broken association must not end the receiver; the retrieval's counts tell
        }
    }
}

vs_status pnet_receiver_start(int port, const char *aet, const pnet_tls *tls, int timeout_s,
                              const pnet_sink *sink, pnet_receiver **out, vs_error *err) {
    *out = nullptr;
    quiet_dcmtk();
    auto *r = new (std::nothrow) pnet_receiver;
    if (!r) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    try {
        r->aet = aet;
        r->sink = *sink;
        r->timeout = timeout_s;
        OFCondition c = ASC_initializeNetwork(NET_ACCEPTOR, port, timeout_s, &r->net);
        if (c.bad()) {
            VS_FAIL(err, VS_ERR_ENV, "cannot listen on port %d for C-MOVE: %s", port, c.text());
            goto fail;
        }
        if (tls) {
            std::string why;
            if (!(r->tls = tls_layer(NET_ACCEPTOR, tls, &why))) {
                VS_FAIL(err, VS_ERR_CONFIG, "C-MOVE receiver: %s", why.c_str());
                goto fail;
            }
            if ((c = ASC_setTransportLayer(r->net, r->tls, 0)).bad()) {
                VS_FAIL(err, VS_ERR_LIBRARY, "C-MOVE receiver: cannot use TLS: %s", c.text());
                goto fail;
            }
        }
        r->thread = std::thread(receiver_loop, r);
    } catch (...) {
        VS_FAIL(err, VS_ERR_LIBRARY, "cannot start the C-MOVE receiver on port %d", port);
        goto fail;
    }
    *out = r;
    return VS_OK;
fail:
    if (r->net) ASC_dropNetwork(&r->net);
    delete r->tls;
    delete r;
    return err->code;
}

void pnet_receiver_stop(pnet_receiver *r) {
    if (!r) return;
    r->stop = true;
    if (r->thread.joinable()) r->thread.join();
    try {
        if (r->net) ASC_dropNetwork(&r->net);
    } catch (...) {
    }
    delete r->tls;
    delete r;
}

void pnet_file_series_uid(const char *path, char *out, int cap) {
    out[0] = 0;
    try {
        DcmFileFormat ff;
        OFString uid;
        if (ff.loadFileUntilTag(path, EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                                DCM_PixelData)
                .good() &&
            ff.getDataset()->findAndGetOFString(DCM_SeriesInstanceUID, uid).good()) {
            std::string v(uid.c_str());
            while (!v.empty() && (v.back() == ' ' || v.back() == 0))
                v.pop_back();
            snprintf(out, (size_t)cap, "%s", v.c_str());
        }
    } catch (...) {
        out[0] = 0;
    }
}
